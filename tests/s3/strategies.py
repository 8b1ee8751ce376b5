"""Hypothesis strategies for S3 values: keys, sizes, timestamps."""

from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import strategies as st

# Every character XML 1.0 can carry, including TAB, LF, CR and the markup characters.
XML_CHARACTERS = st.characters(
    codec="utf-8",
    exclude_categories=("Cs",),
    exclude_characters="".join(chr(c) for c in range(0x20) if chr(c) not in "\t\n\r") + "\ufffe\uffff",
)
MARKUP = st.sampled_from(["&", "<", ">", '"', "'", "\r", "\r\n", "\n", "\t", " ", "+", "%", "/", "]]>"])

xml_text = st.lists(st.one_of(XML_CHARACTERS, MARKUP), max_size=40).map("".join)
object_keys = st.lists(st.one_of(XML_CHARACTERS, MARKUP), min_size=1, max_size=60).map("".join).filter(
    lambda key: len(key.encode("utf-8")) <= 1024
)
# Any Unicode key at all, controls included: only encoding-type=url can list these.
any_keys = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=60
)
sizes = st.integers(min_value=0, max_value=5 * 1024**4)
timestamps = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(timezone.utc)
)
etags = st.binary(min_size=16, max_size=16).map(bytes.hex)


def millisecond(moment: datetime) -> datetime:
    """``moment`` as S3 reports it: truncated to the millisecond."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
