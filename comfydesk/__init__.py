"""comfydesk: run ComfyUI workflows from a native window, without touching a node graph."""

__version__ = "0.1.0"
__all__ = ["__version__"]
