"""Request XML parsing refuses DTDs, entities, oversized and over-deep documents."""

from __future__ import annotations

import pytest

from kmsgate.s3.deletion import parse_delete_request
from kmsgate.s3.errors import MalformedXML, MaxMessageLengthExceeded
from kmsgate.s3.xmlreader import MAX_DEPTH, XmlNode, parse_boolean, parse_integer, parse_request_xml

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Delete><Object><Key>&lol9;</Key></Object></Delete>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Delete [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<Delete><Object><Key>&secret;</Key></Object></Delete>"""

BARE_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE Delete SYSTEM "http://127.0.0.1:9/evil.dtd">
<Delete><Object><Key>a</Key></Object></Delete>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Delete [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p.dtd"> %p;]>
<Delete><Object><Key>a</Key></Object></Delete>"""


@pytest.mark.parametrize(
    "body", [BILLION_LAUGHS, EXTERNAL_ENTITY, BARE_DTD, PARAMETER_ENTITY], ids=["laughs", "external", "dtd", "parameter"]
)
def test_a_document_with_a_dtd_or_entities_is_refused_as_malformed_xml(body: bytes) -> None:
    with pytest.raises(MalformedXML):
        parse_delete_request(body)


def test_a_body_past_the_cap_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(MaxMessageLengthExceeded):
        parse_request_xml(b"<a>" + b"x" * 100 + b"</a>", root="a", max_bytes=100)


def test_nesting_deeper_than_the_limit_is_malformed_xml() -> None:
    def nested(depth: int) -> bytes:
        return b"<a>" * depth + b"x" + b"</a>" * depth

    assert parse_request_xml(nested(MAX_DEPTH), root="a", max_bytes=10_000).name == "a"
    with pytest.raises(MalformedXML):
        parse_request_xml(nested(MAX_DEPTH + 1), root="a", max_bytes=10_000)
    with pytest.raises(MalformedXML):
        parse_request_xml(nested(50_000), root="a", max_bytes=1_000_000)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"not xml",
        b"<a>",
        b"<a></b>",
        b"<b/>",
        b'<a xmlns="urn:other"/>',
        b'<a><x:b xmlns:x="urn:other"/></a>',
        b'<a colour="red"/>',
        b"<a>text<b/></a>",
        b"<a><b/>tail</a>",
        b'<?xml version="1.0" encoding="UTF-8"?><a>\xff\xfe</a>',
    ],
)
def test_bodies_that_are_not_a_plain_s3_document_are_malformed_xml(body: bytes) -> None:
    with pytest.raises(MalformedXML):
        parse_request_xml(body, root="a", max_bytes=1000)


def test_the_s3_namespace_and_no_namespace_read_the_same() -> None:
    plain = parse_request_xml(b"<a><b>1</b></a>", root="a", max_bytes=1000)
    qualified = parse_request_xml(b'<a xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><b>1</b></a>', root="a", max_bytes=1000)
    assert plain == qualified == XmlNode("a", "", (XmlNode("b", "1", ()),))


def test_comments_and_processing_instructions_are_ignored() -> None:
    tree = parse_request_xml(b"<a><!-- note --><?pi x?><b>1</b></a>", root="a", max_bytes=1000)
    assert tree == XmlNode("a", "", (XmlNode("b", "1", ()),))


def test_character_references_are_read_as_characters() -> None:
    tree = parse_request_xml(b"<a>&lt;&amp;&#xD;&#10;&#x1F600;</a>", root="a", max_bytes=1000)
    assert tree.text == "<&\r\n\U0001f600"


@pytest.mark.parametrize(("text", "value"), [("true", True), ("false", False), ("1", True), ("0", False), (" true ", True)])
def test_xsd_booleans(text: str, value: bool) -> None:
    assert parse_boolean(text) is value


@pytest.mark.parametrize("text", ["True", "yes", "", "2"])
def test_other_booleans_are_malformed(text: str) -> None:
    with pytest.raises(MalformedXML):
        parse_boolean(text)


@pytest.mark.parametrize("text", ["", "-1", "+1", "1.0", "١", "9" * 19])
def test_integers_must_be_plain_bounded_decimals(text: str) -> None:
    with pytest.raises(MalformedXML):
        parse_integer(text)
