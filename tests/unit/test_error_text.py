"""How an error answer's body is quoted in a message (`comfydesk.backends.error_text`)."""

from __future__ import annotations

import pytest

from comfydesk.backends.error_text import is_html, quote_body
from comfydesk.testing.faults import HTML_ERROR_PAGE


@pytest.mark.parametrize(
    ("body", "content_type", "quoted"),
    [
        (HTML_ERROR_PAGE.decode(), "text/html", "502 Bad Gateway (an HTML page)"),
        (HTML_ERROR_PAGE.decode(), "", "502 Bad Gateway (an HTML page)"),  # known by its start alone
        (
            "<!DOCTYPE html>\n<html><head><title>\n  Sign in &amp;\n  continue </title></head></html>",
            "text/html; charset=utf-8",
            "Sign in & continue (an HTML page)",
        ),
        (
            "<html><body><h1>Service <b>Unavailable</b></h1></body></html>",
            "",
            "Service Unavailable (an HTML page)",
        ),
        (
            "<html><head><style>p{}</style></head><body><p>Bad   gateway</p></body></html>",
            "",
            "Bad gateway (an HTML page)",
        ),
        ("<html><body></body></html>", "text/html", "an HTML page with no text"),
        ("upstream\n  went   away", "text/plain", "upstream went away"),
        ("a <b>tag</b> in text", "text/plain", "a <b>tag</b> in text"),
        ("   \n", "text/html", "no body"),
        ("", "", "no body"),
    ],
)
def test_a_body_is_quoted_on_one_line_and_a_page_by_its_title(
    body: str, content_type: str, quoted: str
) -> None:
    assert quote_body(body, content_type) == quoted


def test_quotes_are_bounded_and_printable() -> None:
    long_title = "<html><title>" + "x" * 5000 + "\x1b[2J</title></html>"
    said = quote_body(long_title)
    assert said == "x" * 200 + " (an HTML page)"
    assert quote_body("y" * 5000) == "y" * 200
    assert "\x1b" not in quote_body("<html><title>a\x1b]0;PWNED\x07b</title></html>")
    assert not is_html("plain text mentioning <html> later")
