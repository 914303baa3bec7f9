"""How the body of an HTTP error answer is quoted in a message: on one line, and an HTML page (a proxy's
"502 Bad Gateway", a login page) by its title rather than its markup."""

from __future__ import annotations

import html
import re

from comfydesk.core.limits import printable

__all__ = ["is_html", "quote_body"]

#: Only the head of a body is looked at: a title is near the top, and a huge page must cost nothing.
_SCAN = 64 * 1024
_HTML_START = re.compile(
    r"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>])", re.I | re.S
)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.I | re.S)
_H1 = re.compile(r"<h1[^>]*>(.*?)</h1\s*>", re.I | re.S)
_TAG = re.compile(r"<[^>]*>")
_HIDDEN = re.compile(r"<(script|style|head)[^>]*>.*?</\1\s*>", re.I | re.S)


def is_html(body: str, content_type: str = "") -> bool:
    """An HTML page: said so by its content type, or it starts like one."""
    return "html" in content_type.lower() or _HTML_START.match(body[:_SCAN]) is not None


def _text_of(fragment: str) -> str:
    return " ".join(html.unescape(_TAG.sub(" ", fragment)).split())


def quote_body(body: str, content_type: str = "", *, limit: int = 200) -> str:
    """`body` for a message: "no body"; an HTML page as "<its title, else its first h1, else its text>
    (an HTML page)"; any other text with its whitespace collapsed to single spaces. Cut at `limit`
    characters (the HTML summary before its suffix)."""
    if not body.strip():
        return "no body"
    if is_html(body, content_type):
        head = body[:_SCAN]
        for pattern in (_TITLE, _H1):
            found = pattern.search(head)
            title = printable(_text_of(found.group(1)))[:limit] if found else ""
            if title:
                return f"{title} (an HTML page)"
        text = printable(_text_of(_HIDDEN.sub(" ", head)))[:limit]  # no title: what the page says
        return f"{text} (an HTML page)" if text else "an HTML page with no text"
    return printable(" ".join(body.split()))[:limit]
