"""Parsing S3 request bodies safely into a small, typed tree.

Request XML comes from the network, so before any element is looked at:

- the body is capped (``MaxMessageLengthExceeded`` past the caller's limit, checked
  before parsing, so memory is bounded by the cap);
- the parser refuses any DTD, entity declaration or external reference (defusedxml
  over the standard expat parser): no entity expansion ("billion laughs", quadratic
  blow-up), no external entity fetches, no DTD-driven defaults;
- nesting deeper than ``MAX_DEPTH`` is refused (the documents we accept are shallow);
- every element must be unqualified or in S3's namespace, and text may not be mixed
  with child elements.

Anything that fails these checks, or is not well-formed, is ``MalformedXML`` — the code
S3 gives for a body that does not validate against its schema. The result is a tree of
``XmlNode`` values; the per-document parsers then check names, counts and values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as _defused_fromstring

from kmsgate.s3.errors import MalformedXML, MaxMessageLengthExceeded
from kmsgate.s3.xmlwriter import S3_NAMESPACE

MAX_DEPTH = 8
"""Deepest element nesting accepted; S3's request documents need at most four levels."""
MAX_INTEGER_DIGITS = 18
"""Longest integer text accepted (fits in a signed 64-bit value)."""

_NAMESPACE_PREFIX = "{" + S3_NAMESPACE + "}"


@dataclass(frozen=True, slots=True)
class XmlNode:
    """One element of a request document: its local name, its text, its children."""

    name: str
    text: str
    children: tuple[XmlNode, ...]

    def all(self, name: str) -> list[XmlNode]:
        """The children called ``name``, in document order."""
        return [child for child in self.children if child.name == name]

    def one(self, name: str) -> XmlNode | None:
        """The child called ``name``; ``MalformedXML`` if there are several."""
        found = self.all(name)
        if len(found) > 1:
            raise MalformedXML()
        return found[0] if found else None

    def text_of(self, name: str) -> str | None:
        """The text of the child ``name`` (which must be a leaf), or ``None`` if absent."""
        child = self.one(name)
        if child is None:
            return None
        if child.children:
            raise MalformedXML()
        return child.text

    def require_text(self, name: str) -> str:
        """The text of the required child ``name``."""
        text = self.text_of(name)
        if text is None:
            raise MalformedXML()
        return text

    def allow_only(self, names: frozenset[str]) -> None:
        """``MalformedXML`` unless every child is one of ``names``."""
        if any(child.name not in names for child in self.children):
            raise MalformedXML()


def _local_name(tag: Any) -> str:
    if not isinstance(tag, str):
        raise MalformedXML()  # comments and processing instructions are not kept; be sure
    if tag.startswith(_NAMESPACE_PREFIX):
        return tag[len(_NAMESPACE_PREFIX):]
    if tag.startswith("{"):
        raise MalformedXML()
    return tag


def _convert(element: Any, depth: int) -> XmlNode:
    if depth > MAX_DEPTH:
        raise MalformedXML()
    name = _local_name(element.tag)
    if element.attrib and any(not attr.startswith("{http://www.w3.org/") for attr in element.attrib):
        raise MalformedXML()
    children = tuple(_convert(child, depth + 1) for child in element)
    text: str = element.text or ""
    if children:
        # A container may hold only whitespace between its children.
        if text.strip() or any((child.tail or "").strip() for child in element):
            raise MalformedXML()
        text = ""
    return XmlNode(name, text, children)


def parse_request_xml(body: bytes, *, root: str, max_bytes: int) -> XmlNode:
    """The checked tree of ``body``, whose root element must be ``root``."""
    if len(body) > max_bytes:
        raise MaxMessageLengthExceeded()
    if not body.strip():
        raise MalformedXML()
    try:
        element = _defused_fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise MalformedXML() from exc
    tree = _convert(element, 1)
    if tree.name != root:
        raise MalformedXML()
    return tree


def parse_boolean(text: str) -> bool:
    """An ``xsd:boolean`` (``true``, ``false``, ``1``, ``0``); ``MalformedXML`` otherwise."""
    value = text.strip()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise MalformedXML()


def parse_integer(text: str) -> int:
    """A non-negative decimal integer of at most ``MAX_INTEGER_DIGITS`` digits."""
    value = text.strip()
    if not value.isascii() or not value.isdigit() or len(value) > MAX_INTEGER_DIGITS:
        raise MalformedXML()
    return int(value)
