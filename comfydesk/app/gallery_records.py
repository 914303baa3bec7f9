"""What the gallery needs to know of one output, without Qt: whether it has a picture, its thumbnail key,
whether it passes a filter, its place in the newest-first order, and its run's group header."""

from __future__ import annotations

import hashlib
import time

from comfydesk.store.journal import OutputFilter, OutputRecord

__all__ = ["group_header", "has_picture", "matches", "newest_first", "thumb_key"]


def has_picture(record: OutputRecord) -> bool:
    """Whether a thumbnail can be made (images and animations; not text, audio or video)."""
    if record.path is None:
        return False
    if record.mime.startswith("image/"):
        return True
    return record.kind in ("images", "gifs") and not record.mime.startswith(("video/", "audio/", "text/"))


def thumb_key(record: OutputRecord) -> str:
    """The thumbnail's cache key: the content hash (or a hash of the path when there is none)."""
    if record.sha256:
        return record.sha256
    return hashlib.sha256(str(record.path).encode("utf-8")).hexdigest()


def matches(flt: OutputFilter, record: OutputRecord) -> bool | None:
    """Whether `record` passes `flt`; None when only the journal can say (text search over form values)."""
    if flt.workflow is not None and record.workflow_name != flt.workflow:
        return False
    if flt.server is not None and record.server != flt.server:
        return False
    if flt.since is not None and record.created_at < flt.since:
        return False
    if flt.until is not None and record.created_at >= flt.until:
        return False
    if flt.status is not None and record.status != flt.status:
        return False
    if flt.starred is not None and record.starred != flt.starred:
        return False
    if flt.text.strip():
        return None
    return True


def newest_first(record: OutputRecord) -> tuple[float, int]:
    return (-record.created_at, -record.id)


def group_header(record: OutputRecord) -> str:
    """ "Dec 02 10:42 · Blog Post Image · seed 1234" (today's date is left out)."""
    stamp = time.localtime(record.created_at)
    same_day = time.strftime("%Y%m%d", stamp) == time.strftime("%Y%m%d")
    when = time.strftime("%H:%M" if same_day else "%b %d %H:%M", stamp)
    parts = [when, record.workflow_name or "(untitled)"]
    if record.seed is not None:
        parts.append(f"seed {record.seed}")
    return " · ".join(parts)
