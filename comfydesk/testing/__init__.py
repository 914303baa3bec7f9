"""A fake ComfyUI server built from real captures, for tests and the built-in demo engine (no Qt)."""
