"""The run journal (comfydesk.store.journal): schema migrations, content-addressed outputs, the gallery's
queries (filters, paging, facets), star/delete/restore/purge, and imports, hostile files included."""

from __future__ import annotations

import hashlib
import io
import sqlite3
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from comfydesk.core.pngmeta import embed_workflow_png
from comfydesk.store import journal_schema
from comfydesk.store.journal import SCHEMA_VERSION, Journal, JournalVersionError, OutputFilter
from comfydesk.store.paths import resolve_paths

GRAPH = {"3": {"class_type": "KSampler", "inputs": {"seed": 42, "steps": 20}}}


def png(width: int = 8, height: int = 6, color: tuple[int, int, int] = (10, 20, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png() -> bytes:
    """A valid-looking PNG header claiming 100000 x 100000 pixels (a decompression bomb), tiny on disk."""
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal.sqlite3", tmp_path / "blobs")
    yield j
    j.close()


def record(j: Journal, **over: Any) -> int:
    args: dict[str, Any] = {
        "profile_id": "studio",
        "server": "Studio GPU",
        "workflow_name": "Blog Post Image",
        "workflow_id": None,
        "api_graph": GRAPH,
        "ui_graph": None,
        "values": {"prompt": "A Beautiful landscape", "3.seed": 42},
        "seed": 42,
    }
    args.update(over)
    return j.record_run(**args).id


def add(j: Journal, run_id: int, data: bytes, name: str = "a.png", **over: Any) -> Any:
    return j.add_output(
        run_id, node_id="9", kind="images", data=data, source=f"output//{name}", filename=name, **over
    )


# -------------------------------------------------------------------------------------------- schema


def test_paths_name_the_journal_and_the_blob_store(tmp_path: Path) -> None:
    paths = resolve_paths(tmp_path).ensure()
    assert paths.journal_file.parent == paths.data_dir and paths.blobs_dir.is_dir()


def test_a_new_database_is_migrated_to_the_newest_schema_in_wal_mode(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db", tmp_path / "blobs")
    j.close()
    db = sqlite3.connect(tmp_path / "j.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == len(journal_schema.MIGRATIONS)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runs", "outputs", "meta"} <= tables
    db.close()


def test_a_v1_database_migrates_to_a_v2_keeping_its_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    j = Journal(tmp_path / "j.db", tmp_path / "blobs")
    run_id = record(j)
    out = add(j, run_id, png())
    j.close()

    def v2(db: sqlite3.Connection) -> None:
        db.executescript("ALTER TABLE outputs ADD COLUMN rating INTEGER NOT NULL DEFAULT 0;")

    monkeypatch.setattr(journal_schema, "MIGRATIONS", [*journal_schema.MIGRATIONS, v2])
    j2 = Journal(tmp_path / "j.db", tmp_path / "blobs")
    assert j2.version == 2
    assert j2.output(out.id) == out and j2.run(run_id) is not None
    j2.close()
    db = sqlite3.connect(tmp_path / "j.db")
    assert db.execute("SELECT rating FROM outputs").fetchall() == [(0,)]
    db.close()


def test_a_failing_migration_leaves_the_old_version_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Journal(tmp_path / "j.db", tmp_path / "blobs").close()

    def broken(db: sqlite3.Connection) -> None:
        db.executescript("CREATE TABLE half (x INTEGER);\nTHIS IS NOT SQL;")

    monkeypatch.setattr(journal_schema, "MIGRATIONS", [*journal_schema.MIGRATIONS, broken])
    with pytest.raises(sqlite3.Error):
        Journal(tmp_path / "j.db", tmp_path / "blobs")
    db = sqlite3.connect(tmp_path / "j.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    assert not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'half'").fetchone()
    db.close()


def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "j.db")
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(JournalVersionError, match="99"):
        Journal(tmp_path / "j.db", tmp_path / "blobs")


# -------------------------------------------------------------------------------------------- runs


def test_a_run_keeps_its_graph_values_seed_and_status_history(journal: Journal) -> None:
    ui = {"nodes": [{"id": 3, "type": "KSampler"}], "links": []}
    run_id = record(journal, ui_graph=ui, values={"prompt": "cat", "image": Path("/tmp/in.png")})
    run = journal.run(run_id)
    assert run is not None
    assert (run.api_graph, run.ui_graph, run.seed, run.status) == (GRAPH, ui, 42, "recorded")
    assert run.values == {"prompt": "cat", "image": "/tmp/in.png"}
    assert [r.id for r in journal.unfinished_runs("studio")] == [run_id]
    journal.mark_submitted(run_id, "exec-1")
    journal.set_status(run_id, "running")
    run = journal.run(run_id)
    assert run is not None and (run.execution_id, run.status) == ("exec-1", "running")
    journal.set_status(run_id, "failed", error="boom")
    journal.set_status(run_id, "running")  # a late event never reopens an ended run
    run = journal.run(run_id)
    assert run is not None and (run.status, run.error) == ("failed", "boom") and run.finished_at
    assert journal.unfinished_runs("studio") == [] and journal.unfinished_runs("other") == []
    with pytest.raises(ValueError):
        journal.set_status(run_id, "exploded")


# -------------------------------------------------------------------------------------------- outputs


def test_outputs_are_content_addressed_and_the_same_bytes_share_one_blob(
    journal: Journal, tmp_path: Path
) -> None:
    data = png()
    sha = hashlib.sha256(data).hexdigest()
    first = add(journal, record(journal), data)
    assert first.path == tmp_path / "blobs" / sha[:2] / f"{sha}.png"
    assert hashlib.sha256(first.path.read_bytes()).hexdigest() == first.sha256 == sha
    assert (first.width, first.height, first.size, first.mime) == (8, 6, len(data), "image/png")
    again = add(journal, record(journal), data, name="same-bytes-other-name.webp")
    assert again.path == first.path
    assert add(journal, first.run_id, data) is None  # the same source of the same run: stored already
    blobs = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert blobs == [first.path]  # one file, and no temp file left behind


def test_text_outputs_have_no_file(journal: Journal) -> None:
    run_id = record(journal)
    out = journal.add_output(
        run_id, node_id="7", kind="text", data=None, text="hello", source="7/text/0", filename=""
    )
    assert out is not None and (out.path, out.text, out.sha256, out.mime) == (None, "hello", "", "text/plain")


def test_filters_paging_and_facets(tmp_path: Path) -> None:
    clock = iter(range(1000, 2000)).__next__
    j = Journal(tmp_path / "j.db", tmp_path / "blobs", clock=lambda: float(clock()))
    a = record(j, workflow_name="Portrait", values={"prompt": "a red FOX in snow"})
    b = record(j, workflow_name="Landscape", server="Laptop", values={"prompt": "100% mountains_"})
    outs = [add(j, a if i % 2 else b, png(color=(i, 0, 0)), name=f"{i}.png") for i in range(10)]
    j.set_status(a, "completed")
    assert [o.id for o in j.outputs()] == [o.id for o in reversed(outs)]  # newest first
    assert [o.id for o in j.outputs(limit=3, offset=3)] == [o.id for o in reversed(outs)][3:6]
    assert j.count(OutputFilter(workflow="Portrait")) == 5
    assert {o.server for o in j.outputs(OutputFilter(server="Laptop"))} == {"Laptop"}
    assert j.count(OutputFilter(status="completed")) == 5 and j.count(OutputFilter(status="recorded")) == 5
    assert j.count(OutputFilter(text="fox")) == 5 and j.count(OutputFilter(text="LANDSCAPE")) == 5
    assert j.count(OutputFilter(text="100%")) == 5 and j.count(OutputFilter(text="1%")) == 0  # % is literal
    assert j.count(OutputFilter(text="s_")) == 5 and j.count(OutputFilter(text="a_")) == 0  # _ too
    since, until = outs[2].created_at, outs[5].created_at
    assert [o.id for o in j.outputs(OutputFilter(since=since, until=until))] == [
        outs[4].id,
        outs[3].id,
        outs[2].id,
    ]
    assert j.facets() == {"workflow": ["Landscape", "Portrait"], "server": ["Laptop", "Studio GPU"]}
    first = j.outputs(OutputFilter(workflow="Portrait"))[0]
    assert (first.workflow_name, first.status, first.seed) == ("Portrait", "completed", 42)
    j.close()


def test_star_delete_restore_and_purge(journal: Journal) -> None:
    run_id = record(journal)
    shared = png(color=(1, 2, 3))
    one, two = add(journal, run_id, shared, "1.png"), add(journal, run_id, shared, "2.png")
    own = add(journal, run_id, png(color=(9, 9, 9)), "3.png")
    journal.set_starred([one.id, own.id], True)
    assert {o.id for o in journal.outputs(OutputFilter(starred=True))} == {one.id, own.id}
    assert journal.delete_outputs([one.id, own.id, own.id]) == [one.id, own.id]
    assert journal.count() == 1 and journal.output(one.id) is None
    assert journal.outputs_of_run(run_id) == [two]
    journal.restore_outputs([one.id])
    assert journal.count() == 2 and journal.output(one.id) is not None
    assert journal.delete_outputs([one.id, own.id]) == [one.id]
    assert journal.purge_deleted() == 2
    assert not own.path.exists()  # no row needs it any more
    assert one.path.exists()  # the same bytes are still an output (two)
    journal.delete_outputs([two.id])
    assert journal.purge_deleted() == 1 and not one.path.exists()
    assert journal.purge_deleted() == 0


def test_the_newest_page_stays_fast_with_10000_outputs(journal: Journal) -> None:
    run_ids = [record(journal, workflow_name=f"wf{i % 7}") for i in range(50)]
    for i in range(10_000):
        journal.add_output(
            run_ids[i % 50], node_id="9", kind="text", data=None, text=str(i), source=f"t{i}", filename=""
        )
    plan = " ".join(
        str(r)
        for r in journal._db.execute(
            "EXPLAIN QUERY PLAN SELECT o.id FROM outputs o JOIN runs r ON r.id = o.run_id "
            "WHERE o.deleted = 0 ORDER BY o.created_at DESC, o.id DESC LIMIT 200"
        )
    )
    assert "outputs_newest" in plan and "TEMP B-TREE" not in plan
    start = time.perf_counter()
    page = journal.outputs(limit=200, offset=9_000)
    filtered = journal.outputs(OutputFilter(workflow="wf3"), limit=200)
    total = journal.count()
    elapsed = time.perf_counter() - start
    assert len(page) == 200 and len(filtered) == 200 and total == 10_000
    assert elapsed < 0.25, elapsed


# -------------------------------------------------------------------------------------------- imports


def comfy_png(seed: int, color: tuple[int, int, int]) -> bytes:
    prompt = {
        "3": {"class_type": "KSampler", "inputs": {"seed": seed, "model": ["4", 0]}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": f"a castle, seed {seed}", "clip": ["4", 1]}},
    }
    workflow = {"nodes": [{"id": 3, "type": "KSampler"}], "links": [], "version": 0.4}
    return embed_workflow_png(png(color=color), prompt=prompt, workflow=workflow)


def test_import_folder_reads_comfyui_metadata_and_survives_hostile_files(
    journal: Journal, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "ComfyUI" / "output"
    (folder / "sub").mkdir(parents=True)
    (folder / "ComfyUI_00001_.png").write_bytes(comfy_png(7, (1, 1, 1)))
    (folder / "sub" / "portrait_00002_.png").write_bytes(comfy_png(8, (2, 2, 2)))
    (folder / "not-an-image.png").write_bytes(b"hello, I am text")
    (folder / "truncated.png").write_bytes(png(64, 64, (5, 5, 5))[:60])
    (folder / "bomb.png").write_bytes(bomb_png())
    jpeg = io.BytesIO()
    Image.new("RGB", (4, 4)).save(jpeg, "JPEG")
    (folder / "wrong-extension.png").write_bytes(jpeg.getvalue())
    (folder / "notes.txt").write_text("ignored")

    assert journal.import_folder(folder) == 6
    by_name = {o.workflow_name: o for o in journal.outputs()}
    good = by_name["ComfyUI"]
    run = journal.run(good.run_id)
    assert run is not None and run.status == "imported" and run.profile_id == ""
    assert run.seed == 7 and run.api_graph["3"]["inputs"]["seed"] == 7
    assert run.ui_graph == {"nodes": [{"id": 3, "type": "KSampler"}], "links": [], "version": 0.4}
    assert run.values["6.text"] == "a castle, seed 7" and "3.model" not in run.values
    assert (good.width, good.height) == (8, 6)
    assert journal.count(OutputFilter(text="castle")) == 2 and "portrait" in by_name
    for name in ("not-an-image", "truncated", "bomb"):
        assert (by_name[name].width, by_name[name].height) == (None, None), name
    assert (
        by_name["wrong-extension"].mime == "image/jpeg" and by_name["wrong-extension"].path.suffix == ".jpg"
    )
    assert "decompression bomb" in caplog.text
    assert journal.import_folder(folder) == 0  # the same bytes are in the journal already


def test_the_old_results_folder_is_imported_once(journal: Journal, tmp_path: Path) -> None:
    results = tmp_path / "results"
    (results / "2026-01-02").mkdir(parents=True)
    (results / "2026-01-02" / "ComfyUI_00001_.png").write_bytes(comfy_png(1, (3, 3, 3)))
    (results / "2026-01-03").mkdir()
    (results / "2026-01-03" / "demo_00004_.png").write_bytes(png(color=(4, 4, 4)))
    assert journal.import_results_dir(results) == 2
    assert [r.id for r in journal.last_import] == [o.id for o in reversed(journal.outputs())]
    (results / "2026-01-04").mkdir()
    (results / "2026-01-04" / "late.png").write_bytes(png(color=(5, 5, 5)))
    assert journal.import_results_dir(results) == 0  # remembered: done once
    assert journal.count() == 2


def test_a_missing_results_folder_is_fine(journal: Journal, tmp_path: Path) -> None:
    assert journal.import_results_dir(tmp_path / "nowhere") == 0


@pytest.mark.parametrize("seed", [0, 42, 2**63 - 1, 2**63, 2**64 - 1])
def test_every_comfyui_seed_round_trips_through_the_journal(journal: Journal, seed: int) -> None:
    """ComfyUI seeds run to 2**64 - 1; SQLite's integers stop at 2**63 - 1 (a random seed is in the upper
    half about half the time, and used to make the run go unrecorded)."""
    run_id = record(journal, seed=seed, values={"3.seed": seed})
    again = journal.run(run_id)
    assert again is not None and again.seed == seed and again.values == {"3.seed": seed}
    [output] = [add(journal, run_id, png())]
    [listed] = journal.outputs_of_run(run_id)
    assert listed.id == output.id and listed.seed == seed  # the gallery's re-run uses it


@pytest.mark.parametrize("seed", [-1, 2**64])
def test_a_value_no_seed_can_hold_is_not_kept_but_the_run_is(journal: Journal, seed: int) -> None:
    run_id = record(journal, seed=seed)
    again = journal.run(run_id)
    assert again is not None and again.seed is None
