"""Qt-facing application state: QObjects that own a backend and publish state through signals."""
