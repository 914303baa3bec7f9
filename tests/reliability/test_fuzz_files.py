"""Fuzzing what a server sends that becomes a file or an image here (hypothesis), through the app's own code:

- `/view` bodies: `store.journal_files.probe` (the journal), `app.images.decode_image` (viewer, previews),
  `app.images.read_thumbnail` (Qt's reader: the results strip; under pytest-qt's `qapp`, offscreen),
  `app.images.make_thumbnail`; plus fixed decompression bombs with a check on peak memory;
- server-given output file names into every local path made of them: the results folder
  (`app.collect.write_unique`), the journal (`Journal.add_output`), the command line's `run`
  (`commands.run._save_outputs`).

The outcome must be a result or a `ComfyDeskError` with a message, never another exception, and a file only
ever lands directly in its folder under a portable name. The normal run tries 150 cases per target; the soak
run (`-m soak`) 5,000.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import resource
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comfydesk.backends.base import Backend
from comfydesk.backends.comfyui_protocol import safe_output_name
from comfydesk.core.errors import ComfyDeskError, UnsafeInputError
from comfydesk.core.events import OutputRef
from comfydesk.store.journal import Journal
from comfydesk.store.journal_files import probe
from tests.conftest import FIXTURES

if TYPE_CHECKING:
    from PySide6.QtGui import QImage

FAST = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
SOAK = settings(max_examples=5_000, deadline=None, suppress_health_check=list(HealthCheck))


def _expect_error(exc: ComfyDeskError) -> None:
    assert str(exc).strip() and exc.message.strip(), type(exc).__name__  # a sentence, not an empty error


# ================================================================================ (c) /view bodies

VIEW = FIXTURES / "view"
SAMPLES = [
    *(p.read_bytes() for p in sorted(VIEW.glob("*.png"))),
    (VIEW / "empty_blur_save_preview.webp").read_bytes(),
    *(p.read_bytes() for p in sorted((FIXTURES / "transcripts").glob("*_bin_1.jpg"))),
]


def _chunk(kind: bytes, body: bytes, *, crc: bool = True) -> bytes:
    check = zlib.crc32(kind + body) if crc else 0
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", check)


def png_declaring(width: int, height: int, idat: bytes, *, crc: bool = True, color: int = 2) -> bytes:
    """A PNG whose header says `width` x `height`, whatever its pixel data holds."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr, crc=crc)
        + _chunk(b"IDAT", idat, crc=crc)
        + _chunk(b"IEND", b"")
    )


def jpeg_declaring(sample: bytes, width: int, height: int) -> bytes:
    """A real JPEG with its frame header (SOF0/SOF2) saying another size."""
    at = max(sample.find(b"\xff\xc0"), sample.find(b"\xff\xc2"))
    if at < 0:
        return sample
    return sample[: at + 5] + struct.pack(">HH", height & 0xFFFF, width & 0xFFFF) + sample[at + 9 :]


def _flip(data: bytes, spots: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for at, value in spots:
        out[at % len(out)] = value
    return bytes(out)


samples = st.sampled_from(SAMPLES)
sizes = st.integers(0, 64) | st.integers(2**15, 2**31 - 1)
view_bodies = st.one_of(
    st.builds(lambda s, f: s[: int(len(s) * f)], samples, st.floats(0, 1)),  # truncated real images
    st.builds(_flip, samples, st.lists(st.tuples(st.integers(0, 2**16), st.integers(0, 255)), max_size=6)),
    st.binary(max_size=200),  # not an image
    st.builds(lambda t: b"\x89PNG\r\n\x1a\n" + t, st.binary(max_size=80)),  # a PNG signature, then noise
    st.builds(lambda t: b"\xff\xd8\xff\xe0" + t, st.binary(max_size=80)),  # a JPEG one
    st.builds(lambda t: b"RIFF\x10\x00\x00\x00WEBPVP8 " + t, st.binary(max_size=80)),
    st.builds(
        png_declaring,
        sizes,
        sizes,
        st.binary(max_size=40) | st.builds(zlib.compress, st.binary(max_size=200)),
        crc=st.booleans(),
        color=st.sampled_from([0, 2, 3, 4, 6, 7]),
    ),
    st.builds(jpeg_declaring, st.sampled_from(SAMPLES[-3:]), sizes, sizes),
)


def _view_body(data: bytes) -> None:
    from comfydesk.app.images import decode_image, make_thumbnail, read_thumbnail

    found = probe(data, "out.png")  # the journal's look at a download: never raises
    assert found.ext and found.mime
    assert found.problem or (found.width is not None and found.height is not None)
    decoders: tuple[Callable[[], QImage], ...] = (
        lambda: read_thumbnail(data, 64),  # results strip: Qt's reader for PNGs
        lambda: decode_image(data, max_size=(96, 96)),  # previews
        lambda: make_thumbnail(data, 48),  # gallery, form fields
        lambda: decode_image(data),  # the viewer
    )
    for decode in decoders:
        try:
            image = decode()
        except UnsafeInputError as exc:
            _expect_error(exc)
        else:
            assert not image.isNull() and image.width() * image.height() <= 64_000_000


@FAST
@given(view_bodies)
def test_view_bodies_decode_or_are_refused(qapp: Any, data: bytes) -> None:
    _view_body(data)


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def test_decompression_bombs_are_refused_with_bounded_memory(qapp: Any) -> None:
    """Small files declaring huge images, and a real 60,000 x 60,000 all-zero PNG (about 60 KB, 10.8 GB
    once decoded), are refused from their headers: the process's peak memory stays where it was."""
    from comfydesk.app.images import decode_image, make_thumbnail, read_thumbnail

    rows = zlib.compressobj(9)
    line = b"\x00" + b"\x00" * 60_000
    real_bomb = b"".join(rows.compress(line) for _ in range(2_000)) + rows.flush()  # 2,000 rows shown
    bombs = [
        png_declaring(60_000, 60_000, real_bomb, color=0),
        png_declaring(2**31 - 1, 2**31 - 1, zlib.compress(b"\x00" * 64)),
        png_declaring(100_000, 1_000, zlib.compress(b"\x00" * 64)),
        png_declaring(9_000, 9_000, zlib.compress(b"\x00" * 9_001)),  # just over the 64 MP budget
        jpeg_declaring(SAMPLES[-1], 65_000, 65_000),
    ]
    assert len(bombs[0]) < 200_000
    before = _max_rss_mb()
    for data in bombs:
        assert probe(data, "bomb.png").problem
        for decode in (read_thumbnail, make_thumbnail, decode_image):
            with pytest.raises(UnsafeInputError) as caught:
                decode(data)
            _expect_error(caught.value)
    assert _max_rss_mb() - before < 100, f"peak memory grew from {before:.0f} MB to {_max_rss_mb():.0f} MB"


# ================================================================================ (d) server file names

_HOSTILE_PARTS = [
    "..",
    ".",
    "/",
    "\\",
    "\x00",
    "/etc/passwd",
    "C:",
    "C:\\Windows\\",
    "\\\\server\\share\\",
    "CON",
    "con",
    "PRN",
    "AUX",
    "NUL",
    "COM1",
    "LPT1",
    "CONIN$",
    ".png",
    ".txt",
    " ",
    "...",
    "\x1b]0;PWNED\x07",
    "\x1b[2J",
    "\n",
    "\r",
    "\t",
    "\x7f",
    "\x85",
    "\u202e",
    "\u200b",
    "\ufeff",
    "é",
    "日本語",
    "😀",
    "<",
    ">",
    ":",
    '"',
    "|",
    "?",
    "*",
    "a" * 120,
    "é" * 90,
    "ComfyUI_00001_",
]
server_names = st.one_of(
    st.lists(st.sampled_from(_HOSTILE_PARTS) | st.text(max_size=6), min_size=1, max_size=6).map("".join),
    st.text(max_size=300),
)
_RESERVED = re.compile(r"^(CON|PRN|AUX|NUL|COM[0-9¹²³]|LPT[0-9¹²³]|CONIN\$|CONOUT\$)$", re.IGNORECASE)
_NOT_IN_A_NAME = re.compile(r'[\x00-\x1f\x7f-\x9f<>:"/\\|?*]')


def assert_safe_file(path: Path, folder: Path, data: bytes) -> None:
    """`path` is a file directly in `folder`, its name one valid component on every system, holding `data`."""
    assert path.parent == folder, path
    name = path.name
    assert name not in ("", ".", "..") and not _NOT_IN_A_NAME.search(name), repr(name)
    assert len(name.encode("utf-8")) <= 255, len(name.encode("utf-8"))
    assert not name.endswith((".", " ")), repr(name)
    assert not _RESERVED.match(name.split(".", 1)[0].rstrip(" ")), repr(name)
    assert path.resolve().parent == folder.resolve()
    assert path.read_bytes() == data


@pytest.fixture(scope="module")
def name_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Journal, int]]:
    root = tmp_path_factory.mktemp("names")
    journal = Journal(root / "journal.sqlite", root / "blobs")
    run = journal.record_run(
        profile_id="t",
        server="http://127.0.0.1",
        workflow_name="names",
        workflow_id=None,
        api_graph={},
        ui_graph=None,
        values={},
        seed=None,
    )
    try:
        yield root, journal, run.id
    finally:
        journal.close()


class _Files:
    """The one thing `_save_outputs` asks of its backend: the output's bytes (as a /view would give them)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def fetch_output(self, ref: OutputRef) -> bytes:
        return self.data


_case = itertools.count()


def _server_name(root: Path, journal: Journal, run_id: int, name: str, subfolder: str) -> None:
    from comfydesk.app.collect import write_unique as write_result
    from comfydesk.commands.run import _save_outputs

    n = next(_case)
    data = f"output {n}".encode()
    ref = OutputRef("9", "images", filename=name, subfolder=subfolder, type="output")
    try:
        safe = safe_output_name(ref)
    except UnsafeInputError as exc:
        _expect_error(exc)
        safe = None
    if safe is not None:
        # The window's results folder.
        results = root / "results" / str(n)
        assert_safe_file(write_result(results, safe, data), results, data)
        # The journal: the blob's path is its hash; the name is kept as the output's file name.
        record = journal.add_output(
            run_id, node_id="9", kind="images", data=data, source=f"s{n}", filename=safe
        )
        assert record is not None and record.path is not None
        assert record.path.parent.parent == journal.blobs_dir
        assert record.path.read_bytes() == data
    # The command line's `run`: every output written or reported, never an exception.
    out = root / "out" / str(n)
    written, problems = asyncio.run(_save_outputs(cast(Backend, _Files(data)), [ref], out))
    if safe is None:
        assert not written and len(problems) == (1 if ref.is_file else 0), problems
        assert all(p.strip() for p in problems)
    else:
        assert not problems, problems
        (entry,) = written
        assert_safe_file(Path(entry["path"]), out, data)


subfolders = st.sampled_from(["", "fixture", "a/b", "../x", "/etc", "C:\\x", "a\x00"]) | st.text(max_size=8)


@FAST
@given(server_names, subfolders)
def test_server_file_names_stay_inside_their_folder(
    name_dirs: tuple[Path, Journal, int], name: str, subfolder: str
) -> None:
    _server_name(*name_dirs, name, subfolder)


@pytest.mark.parametrize(
    "name",
    [
        "CON",
        "con.png",
        "NUL.txt",
        "COM1.png",
        "lpt1",
        "AUX .png",
        "x.png.",
        "x.png  ",
        "a" * 300 + ".png",
        "é" * 200 + ".png",
        "ab:c.png",
        "a<b>|c?.png",
        "x\x1b]0;PWNED\x07\x1b[2J.png",
    ],
)
def test_names_windows_or_the_file_system_would_refuse_are_made_safe(
    name_dirs: tuple[Path, Journal, int], name: str
) -> None:
    """Reserved device names, trailing dots and spaces, characters Windows refuses and names over 255
    bytes are written under a safe name (found by the fuzzing above; see docs/reliability.md)."""
    safe = safe_output_name(OutputRef("9", "images", filename=name))
    assert safe != name
    _server_name(*name_dirs, name, "")


# ================================================================================ soak: 5,000 cases each


@pytest.mark.soak
@SOAK
@given(view_bodies)
def test_soak_view_bodies(qapp: Any, data: bytes) -> None:
    _view_body(data)


@pytest.mark.soak
@SOAK
@given(server_names, subfolders)
def test_soak_server_file_names(name_dirs: tuple[Path, Journal, int], name: str, subfolder: str) -> None:
    _server_name(*name_dirs, name, subfolder)
