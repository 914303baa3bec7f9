"""A stand-in for ComfyUI's `main.py`, for tests and demos of the managed local server.

Run as a script (`python standin_main.py --listen 127.0.0.1 --port 8188`, or from a `main.py` that calls
`main()`), it behaves as ComfyUI does from the outside: prints start-up log lines, is slow to start, then
serves the fake ComfyUI (demo catalogue) until Ctrl+C (SIGINT), which ends it with code 0. Its own options
(ComfyUI's unknown options are ignored, as `--cpu` or `--lowvram` would be):

  --startup-delay S     seconds of "loading" before it listens (log lines meanwhile)
  --hold-file PATH      and then go on "loading" while PATH exists (a test decides when it is up)
  --crash-on-start N    print a traceback and exit with code N before listening
  --crash-file PATH     once PATH exists, print a traceback and exit with --crash-code (crash on demand)
  --crash-code N        exit code of that crash (default 1)
  --ignore-interrupt    ignore Ctrl+C (SIGINT), so only a kill stops it
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

__all__ = ["main"]


def _say(text: str) -> None:
    print(text, flush=True)


def _crash(code: int, why: str) -> None:
    _say("Traceback (most recent call last):")
    _say('  File "main.py", line 1, in <module>')
    _say(f"RuntimeError: {why}")
    sys.stdout.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="main.py")
    parser.add_argument("--listen", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument("--startup-delay", type=float, default=0.0)
    parser.add_argument("--hold-file", default="")
    parser.add_argument("--crash-on-start", type=int, default=None)
    parser.add_argument("--crash-file", default="")
    parser.add_argument("--crash-code", type=int, default=1)
    parser.add_argument("--ignore-interrupt", action="store_true")
    args, unknown = parser.parse_known_args(argv)

    if args.ignore_interrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _say(f"Python version: {sys.version.split()[0]}")
    _say("ComfyUI version: 0.8.0 (comfydesk stand-in)")
    if unknown:
        _say(f"Extra arguments: {' '.join(unknown)}")
    _say("Total VRAM 0 MB, total RAM 16000 MB")
    _say("Set vram state to: NORMAL_VRAM")
    loading_until = time.monotonic() + args.startup_delay
    step = 0
    while time.monotonic() < loading_until or (args.hold_file and os.path.exists(args.hold_file)):
        step += 1
        _say(f"Import times for custom nodes: loading pack {step}…")
        time.sleep(min(0.1, max(0.0, loading_until - time.monotonic())) or 0.1)  # held: a line per 0.1 s
    if args.crash_on_start is not None:
        _crash(args.crash_on_start, "CUDA error: no kernel image is available (stand-in crash on start)")

    from comfydesk.testing import start_fake_comfyui
    from comfydesk.testing.demo import demo_config

    data = Path(tempfile.mkdtemp(prefix="comfydesk-standin-"))
    # It says it is ComfyUI (not comfydesk's demo engine), and runs the demo nodes quickly.
    config = replace(demo_config(data), step_delay=0.01, demo=False)
    fake = start_fake_comfyui(config, host=args.listen, port=args.port)
    _say("Starting server\n")
    _say(f"To see the GUI go to: http://{args.listen}:{args.port}")

    if args.crash_file:
        crash_file = Path(args.crash_file)

        def watch() -> None:
            while not crash_file.exists():
                time.sleep(0.05)
            _crash(args.crash_code, "stand-in crash on demand")

        threading.Thread(target=watch, daemon=True).start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        _say("\nStopped server")
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
