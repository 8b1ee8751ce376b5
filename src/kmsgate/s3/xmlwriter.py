"""Rendering S3's XML response documents: elements, escaping, the namespace.

A document is a tree of ``Element`` values rendered in one pass::

    <?xml version="1.0" encoding="UTF-8"?>
    <Root xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Child>text</Child>...</Root>

Text is escaped so that any string survives a conforming parser unchanged: ``& < > " '``
become entity references, and TAB, LF and CR become numeric references (a parser would
otherwise normalise CR and CRLF to LF). Characters that XML 1.0 cannot carry at all (the
other C0 controls, U+FFFE, U+FFFF, lone surrogates) are written as numeric references,
as S3 does; XML 1.0 parsers reject them, which is why S3 tells clients to list such keys
with ``encoding-type=url`` (see ``listings.url_encode``), and botocore always asks for it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from kmsgate.s3.dates import format_timestamp

S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'

_NEEDS_ESCAPE = re.compile("[&<>\"'\x00-\x1f\ufffe\uffff\ud800-\udfff]")
_NAMED = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}

Value = str | int | bool | datetime


@dataclass(frozen=True, slots=True)
class Element:
    """One XML element: text content or child elements (S3 documents never mix them)."""

    name: str
    text: str | None = None
    children: tuple[Element, ...] = ()


def _replace(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or f"&#{ord(char)};"


def escape_text(value: str) -> str:
    """``value`` as XML character data; see the module docstring for what is escaped."""
    return _NEEDS_ESCAPE.sub(_replace, value)


def format_value(value: Value) -> str:
    """The text S3 writes for a scalar: ``true``/``false``, decimal integers, ISO timestamps."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return format_timestamp(value)
    return value


def leaf(name: str, value: Value | None) -> Element | None:
    """A text element, or ``None`` (left out of the document) when ``value`` is ``None``."""
    if value is None:
        return None
    return Element(name, text=format_value(value))


def node(name: str, *children: Element | None | Iterable[Element | None]) -> Element:
    """A container element; ``None`` children are left out, iterables are flattened."""
    flat: list[Element] = []
    for child in children:
        if child is None:
            continue
        if isinstance(child, Element):
            flat.append(child)
        else:
            flat.extend(c for c in child if c is not None)
    return Element(name, children=tuple(flat))


def _render(element: Element, out: list[str], xmlns: str) -> None:
    out.append(f"<{element.name}{xmlns}>")
    if element.text is not None:
        out.append(escape_text(element.text))
    for child in element.children:
        _render(child, out, "")
    out.append(f"</{element.name}>")


def render_document(root: Element, *, namespace: str | None = S3_NAMESPACE) -> bytes:
    """The UTF-8 document for ``root`` with the XML declaration; ``namespace`` on the root."""
    out = [XML_DECLARATION]
    xmlns = f' xmlns="{namespace}"' if namespace else ""
    _render(root, out, xmlns)
    return "".join(out).encode("utf-8")
