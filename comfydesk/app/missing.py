"""The current workflow's missing pieces as app state, following the form's values and the server.

`MissingPiecesModel` holds the `MissingPieces` of the selected workflow (`CurrentWorkflow.needs` checked
against the values the form holds now) and says `pieces_changed` when they change: another workflow, a
model picked from the server's list, or a new catalog. The library rebuilds the current workflow whenever the
catalog changes (a new connection, F5); when the backend reconnects on its own after the server went away,
this model asks for the catalog again, so model lists follow what the restarted server has.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import QObject, Signal

from comfydesk.app.catalog import CatalogModel
from comfydesk.app.connection import ConnectionModel
from comfydesk.app.library import CurrentWorkflow
from comfydesk.backends.base import Backend, ConnectionState, ConnectionStatus
from comfydesk.core.errors import ValidationIssue
from comfydesk.core.messages import CATALOGUE, for_issue
from comfydesk.core.missing import MissingPieces, form_inputs, unavailable_fields

__all__ = ["MissingPiecesModel"]


class MissingPiecesModel(QObject):
    """See the module docstring."""

    pieces_changed = Signal(object)  # MissingPieces | None

    def __init__(
        self,
        connection: ConnectionModel | None = None,
        catalog: CatalogModel | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._current: CurrentWorkflow | None = None
        self._values: dict[str, Any] = {}
        self._pieces: MissingPieces | None = None
        self._connection = connection
        self._catalog = catalog
        self._dropped: Backend | None = None
        if connection is not None:
            connection.status_changed.connect(self._on_status)

    @property
    def pieces(self) -> MissingPieces | None:
        return self._pieces

    @property
    def blocking(self) -> bool:
        return self._pieces is not None and self._pieces.blocking

    def unavailable(self) -> dict[str, str]:
        """Form field key -> why it cannot be set (it belongs to a node the server lacks)."""
        cur = self._current
        if cur is None or cur.spec is None or cur.needs is None:
            return {}
        return unavailable_fields(cur.spec, cur.needs)

    def field_notes(self) -> dict[str, str]:
        """Form field key -> what is missing, for each field set to a model/option/file the server lacks.

        Each in the catalogue's words (`comfydesk.core.messages`), said on the field only: an input file or
        an option gets its full sentence (the missing-pieces panel leaves those out); a model gets a short
        mark, as the panel lists it with its folder, size and download link."""
        cur, pieces = self._current, self._pieces
        if cur is None or cur.spec is None or pieces is None:
            return {}
        notes: dict[tuple[str, str], str] = {}
        for model in pieces.models:
            for spot in model.inputs:
                notes[spot] = CATALOGUE["missing_model_marker"]
        for value in (*pieces.choices, *pieces.files):
            issue = ValidationIssue(
                node_id=value.node_id,
                message="",
                kind="value_not_in_list",
                input_name=value.input_name,
                received=value.value,
            )
            notes[(value.node_id, value.input_name)] = for_issue(issue)
        out: dict[str, str] = {}
        for (node_id, input_name), note in notes.items():
            found = cur.spec.field_for(node_id, input_name)
            if found is not None:
                out[found.key] = note
        return out

    def field_key(self, node_id: str, input_name: str) -> str | None:
        cur = self._current
        if cur is None or cur.spec is None:
            return None
        found = cur.spec.field_for(node_id, input_name)
        return found.key if found is not None else None

    # -- inputs ------------------------------------------------------------------------------------
    def set_current(self, current: object, values: Mapping[str, Any] | None = None) -> None:
        """Another workflow, with the values its form holds (checked once, for both)."""
        self._current = current if isinstance(current, CurrentWorkflow) else None
        self._values = dict(values) if values is not None else {}
        self._recheck()

    def set_values(self, values: Mapping[str, Any]) -> None:
        """The form's values (typed; a local file for an image field counts as present)."""
        self._values = dict(values)
        self._recheck()

    # -- internals ---------------------------------------------------------------------------------
    def _recheck(self) -> None:
        cur = self._current
        pieces: MissingPieces | None = None
        if cur is not None and cur.spec is not None and cur.needs is not None:
            pieces = cur.needs.check(form_inputs(cur.spec, self._values))
            if pieces.empty:
                pieces = None
        if pieces != self._pieces:
            self._pieces = pieces
            self.pieces_changed.emit(pieces)

    def _on_status(self, status: ConnectionStatus) -> None:
        """The same backend connected again after a drop (a new backend reads its catalog anyway): the
        server may have restarted with other model files, so its catalog is read again."""
        backend = self._connection.backend if self._connection is not None else None
        if status.state is ConnectionState.RECONNECTING:
            self._dropped = backend or self._dropped
        elif status.state is ConnectionState.CONNECTED:
            dropped, self._dropped = self._dropped, None
            if dropped is not None and dropped is backend and self._catalog is not None:
                self._catalog.load_from(backend, refresh=True)
        else:
            self._dropped = None
