"""XML rendering: any text survives a conforming parser; what XML cannot carry is referenced."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings

from kmsgate.s3.xmlwriter import Element, escape_text, leaf, node, render_document
from tests.s3.strategies import xml_text


@settings(max_examples=500, deadline=None)
@given(text=xml_text)
def test_any_xml_text_reads_back_unchanged(text: str) -> None:
    document = render_document(node("Root", leaf("Value", text)))
    root = ET.fromstring(document)
    value = root.find("{http://s3.amazonaws.com/doc/2006-03-01/}Value")
    assert value is not None
    assert (value.text or "") == text


def test_markup_and_line_endings_are_escaped() -> None:
    assert escape_text("a&b<c>d\"e'f") == "a&amp;b&lt;c&gt;d&quot;e&apos;f"
    assert escape_text("\r\n\t") == "&#13;&#10;&#9;"
    assert escape_text("]]>") == "]]&gt;"


def test_characters_xml_cannot_carry_become_numeric_references() -> None:
    assert escape_text("a\x01b\x1f\ufffe") == "a&#1;b&#31;&#65534;"


def test_a_document_has_the_declaration_and_the_namespace_on_the_root_only() -> None:
    document = render_document(node("Root", node("Child", leaf("Leaf", "x")), leaf("Absent", None)))
    assert document == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<Root xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Child><Leaf>x</Leaf></Child></Root>'
    )
    assert render_document(Element("Error"), namespace=None).endswith(b"<Error></Error>")


def test_scalars_are_written_as_s3_writes_them() -> None:
    when = datetime(2009, 10, 12, 19, 50, 30, 999999, tzinfo=timezone(timedelta(hours=2)))
    document = render_document(node("R", leaf("B", True), leaf("F", False), leaf("I", 5 * 1024**4), leaf("T", when)))
    assert b"<B>true</B><F>false</F><I>5497558138880</I><T>2009-10-12T17:50:30.999Z</T>" in document


def test_a_naive_timestamp_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        render_document(node("R", leaf("T", datetime(2009, 10, 12))))
