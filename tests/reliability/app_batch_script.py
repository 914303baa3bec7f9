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

from comfydesk.app.context import build_context
from comfydesk.app.library import CurrentWorkflow
from comfydesk.core.templates import FormSpec


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
    ctx = build_context(server=url, data_dir=data_dir)
    ready = asyncio.Event()

    def check(*_: object) -> None:
        current = ctx.library.current
        if ctx.connection.backend is not None and isinstance(current, CurrentWorkflow) and current.spec:
            ready.set()

    ctx.library.current_changed.connect(check)
    ctx.connection.backend_changed.connect(check)
    ctx.errors.error_changed.connect(lambda e: print("ERROR", e, file=sys.stderr, flush=True))
    ctx.start()
    ctx.library.select(key)
    await ready.wait()
    current = ctx.library.current
    assert isinstance(current, CurrentWorkflow) and current.spec is not None
    ctx.controller.bind_form(VaryingForm(current.spec))

    async def announce(execution_id: str) -> None:
        await ctx.journal.count()  # the journal's worker is in order: the submission is written by now
        print("SUBMITTED", execution_id, flush=True)

    ctx.controller.submitted.connect(lambda e: ctx.tasks.start(announce(e.id), what="announce"))
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
