"""`python -m comfydesk` behaves like the `comfydesk` command."""

import sys

from comfydesk.cli import main

if __name__ == "__main__":
    sys.exit(main())
