"""Qt-facing application state: QObjects that own a backend and publish state through signals.

The window itself is started by `comfydesk.gui` (above both `app` and `ui`); `app` never imports `ui`.
"""
