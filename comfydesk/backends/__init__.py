"""Network clients (no Qt): the native ComfyUI backend and, later, the /api/v1 backend."""
