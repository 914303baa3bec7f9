"""A real comfydesk process for the kill -9 test: builds the app context offscreen on a data dir, runs one
workflow of its library on a server with the form's defaults, prints `SUBMITTED <execution id>` once the run
is submitted (and recorded), then waits to be killed.

    python tests/journal_app_script.py <data_dir> <server_url> <workflow key>
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("LANG", "C.UTF-8")
os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")

import qasync
from PySide6.QtWidgets import QApplication

from comfydesk.app.context import AppContext, build_context
from comfydesk.app.library import CurrentWorkflow
from comfydesk.core.templates import FormSpec


class DefaultsForm:
    """The form as the controller sees it, holding the spec's defaults."""

    def __init__(self, spec: FormSpec) -> None:
        self._values = spec.defaults()

    def values(self) -> dict[str, Any]:
        return dict(self._values)

    def apply_seed_controls(self) -> dict[str, Any]:
        return dict(self._values)


async def open_workflow(
    data_dir: Path, url: str, key: str, make_form: Callable[[FormSpec], Any]
) -> AppContext:
    """The app context on `data_dir`, connected to `url` with workflow `key` open and a form bound; each
    submission is printed as `SUBMITTED <execution id>` once the journal has it. (Also used by
    tests/reliability/app_batch_script.py.)"""
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
    ctx.controller.bind_form(make_form(current.spec))

    async def announce(execution_id: str) -> None:
        await ctx.journal.count()  # the journal's worker is in order: the submission is written by now
        print("SUBMITTED", execution_id, flush=True)

    ctx.controller.submitted.connect(lambda e: ctx.tasks.start(announce(e.id), what="announce"))
    return ctx


async def main(data_dir: Path, url: str, key: str) -> None:
    ctx = await open_workflow(data_dir, url, key, DefaultsForm)
    ctx.controller.run(1)
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    app = QApplication(sys.argv[:1])
    qasync.run(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3]))
