"""A real comfydesk process for the data-safety kill test: builds the app context offscreen on a data dir
(which also resumes the runs a killed predecessor left), queues `count` runs of one library workflow (the
form's defaults, another colour each run) and prints `SUBMITTED <execution id>` as each is submitted (and
recorded). It then waits to be killed, or, given `--finish`, until its runs have ended (then prints `DONE`).

    python tests/reliability/app_batch_script.py <data_dir> <server_url> <workflow key> <count> [--finish]
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("LANG", "C.UTF-8")
os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")

import qasync
from PySide6.QtWidgets import QApplication

from comfydesk.core.templates import FormSpec
from tests.journal_app_script import open_workflow  # PYTHONPATH is the repository (the test sets it)


class VaryingForm:
    """The form as the controller sees it: the spec's defaults, with another colour for every run (from a
    random start, so no two processes repeat each other), so the server executes every run instead of
    answering it from its cache at once."""

    def __init__(self, spec: FormSpec) -> None:
        self._values = spec.defaults()
        [self._key] = [k for k in self._values if k.endswith("color")]
        self._values[self._key] = random.randrange(0xFFFFFF)

    def values(self) -> dict[str, Any]:
        return dict(self._values)

    def apply_seed_controls(self) -> dict[str, Any]:
        self._values[self._key] = (int(self._values[self._key]) + 1) % 0xFFFFFF
        return dict(self._values)


async def main(data_dir: Path, url: str, key: str, count: int, finish: bool) -> None:
    ctx = await open_workflow(data_dir, url, key, VaryingForm)
    if not finish:
        ctx.controller.run(count)
        await asyncio.Event().wait()  # until killed
    while count > 0:  # batches of at most 100, as the window queues them
        ctx.controller.run(min(100, count))
        count -= min(100, count)
        while True:  # polling: this batch submitted and ended
            await asyncio.sleep(0.05)
            if not ctx.controller.busy:
                break
    while await ctx.journal.unfinished_runs("cli"):  # polling the journal: resumed runs ended too
        await asyncio.sleep(0.1)
    await ctx.aclose()
    print("DONE", flush=True)


if __name__ == "__main__":
    app = QApplication(sys.argv[:1])
    args = sys.argv[1:]
    qasync.run(main(Path(args[0]), args[1], args[2], int(args[3]), "--finish" in args))
