"""Persistence on platform dirs: settings and profiles, secrets, history, image cache (no Qt)."""
