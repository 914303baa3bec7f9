"""Entry point of the packaged app (PyInstaller needs a script, not a console_scripts entry)."""

import sys

from comfydesk.cli import main

if __name__ == "__main__":
    sys.exit(main())
