"""Listing semantics: the pure paging core against a reference model, then every backend against it."""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from storage_contract import BUCKET, put

from kmsgate.gateway.storage.base import ObjectEntry, ObjectPage, Storage
from kmsgate.gateway.storage.listing import list_page, prefix_end

Reference = tuple[list[str], list[str], bool, str | None]


def utf8(s: str) -> bytes:
    return s.encode("utf-8")


def reference(keys: Sequence[str], prefix: str = "", delimiter: str | None = None,
              start_after: str | None = None, max_keys: int = 1000) -> Reference:
    """S3's listing, written the slow obvious way: (keys, common prefixes, truncated, next marker)."""
    entries: list[tuple[str, bool]] = []
    groups: set[str] = set()
    for key in sorted(set(keys), key=utf8):
        if not key.startswith(prefix) or (start_after is not None and utf8(key) <= utf8(start_after)):
            continue
        at = key.find(delimiter, len(prefix)) if delimiter else -1
        if delimiter and at >= 0:
            group = key[: at + len(delimiter)]
            if group not in groups and (start_after is None or utf8(group) > utf8(start_after)):
                groups.add(group)
                entries.append((group, True))
            continue
        entries.append((key, False))
    page = entries[:max_keys]
    truncated = len(entries) > max_keys
    return ([n for n, g in page if not g], [n for n, g in page if g], truncated,
            page[-1][0] if truncated and page else None)


def as_reference(page: ObjectPage) -> Reference:
    return [o.key for o in page.objects], list(page.common_prefixes), page.is_truncated, page.next_marker


class MemoryScan:
    """An in-memory sorted index with the scan the paging core expects."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = sorted(set(keys))  # code point order: the same as UTF-8 byte order
        self.calls = 0

    def __call__(self, lower: str, inclusive: bool, upper: str | None, limit: int) -> list[ObjectEntry]:
        self.calls += 1
        at = (bisect.bisect_left if inclusive else bisect.bisect_right)(self.keys, lower)
        out = []
        for key in self.keys[at : at + limit]:
            if upper is not None and key >= upper:
                break
            out.append(ObjectEntry(key, len(key), "etag", 0.0))
        return out


ALPHABET = "ab/.-é\uffff😀"
keys_st = st.lists(st.text(alphabet=ALPHABET, min_size=1, max_size=6), max_size=40)
delimiters = st.sampled_from([None, "/", ".", "ab", "é", "😀"])


@settings(max_examples=400, deadline=None)
@given(keys=keys_st, prefix=st.text(alphabet=ALPHABET, max_size=3), delimiter=delimiters,
       start_after=st.none() | st.text(alphabet=ALPHABET, max_size=5), max_keys=st.integers(1, 6))
def test_the_paging_core_matches_the_reference(keys: list[str], prefix: str, delimiter: str | None,
                                               start_after: str | None, max_keys: int) -> None:
    got = list_page(MemoryScan(keys), prefix=prefix, delimiter=delimiter, start_after=start_after,
                    max_keys=max_keys)
    assert as_reference(got) == reference(keys, prefix, delimiter, start_after, max_keys)


@settings(max_examples=200, deadline=None)
@given(keys=keys_st, prefix=st.text(alphabet=ALPHABET, max_size=2), delimiter=delimiters,
       max_keys=st.integers(1, 4))
def test_following_next_markers_lists_everything_once(keys: list[str], prefix: str, delimiter: str | None,
                                                      max_keys: int) -> None:
    scan = MemoryScan(keys)
    seen: list[str] = []
    marker = None
    for _ in range(100):
        page = list_page(scan, prefix=prefix, delimiter=delimiter, start_after=marker, max_keys=max_keys)
        seen += [o.key for o in page.objects] + list(page.common_prefixes)
        if not page.is_truncated:
            break
        marker = page.next_marker
    whole = reference(keys, prefix, delimiter)
    assert sorted(seen) == sorted(whole[0] + whole[1])
    assert len(seen) == len(set(seen))


def test_a_large_group_is_skipped_with_one_seek() -> None:
    scan = MemoryScan([f"logs/{i:05}" for i in range(10_000)] + ["z"])
    page = list_page(scan, delimiter="/")
    assert (page.common_prefixes, [o.key for o in page.objects]) == (("logs/",), ["z"])
    assert scan.calls <= 3


def test_prefix_end_bounds_every_extension() -> None:
    assert prefix_end("ab") == "ac"
    assert prefix_end("a\U0010ffff") == "b"
    assert prefix_end("\U0010ffff") is None
    assert prefix_end("a\ud7ff") == "a\ue000"  # past the surrogates, which no key holds
    for p in ["a", "é", "\uffff", "😀", "a/"]:
        end = prefix_end(p)
        assert end is not None
        for tail in ["", "\x00", "\U0010ffff" * 3, "😀"]:
            assert utf8(p + tail) < utf8(end)


# -- every backend, against the same reference --------------------------------------------------

EDGE_KEYS = [
    "a", "a/", "a/b", "a/b/c", "a/bc", "ab", "a.b", "a-b", "b", "b/x/y", "photos/2024/jan/1.jpg",
    "photos/2024/feb/2.jpg", "photos/2025/x.jpg", "photos/readme", "z", "é", "é/1", "\ue000", "\uffff",
    "😀", "😀/😀", "a//double", "dot.dot.dot", "key with space",
]


@pytest.fixture
async def listed(storage: Storage, bucket: str) -> list[str]:
    rng = random.Random(7)
    keys = EDGE_KEYS + ["".join(rng.choice("ab/.é") for _ in range(rng.randint(1, 5))) for _ in range(25)]
    if storage.name == "s3":
        # moto's server answers 500 to a StartAfter holding the noncharacter U+FFFF (a marker
        # the walk below sends); the file backend and the paging core are tested with it.
        keys = [k for k in keys if "\uffff" not in k]
    keys = sorted(set(keys))
    for key in keys:
        await put(storage, key, key.encode())
    return keys


async def test_listing_pages_match_the_reference(storage: Storage, listed: list[str]) -> None:
    cases = itertools.product(["", "a", "a/", "photos/", "é", "z"], [None, "/", ".", "b"],
                              [None, "a/", "a/b", "photos/2024/", "é"], [1, 3, 1000])
    for prefix, delimiter, start_after, max_keys in cases:
        if max_keys == 1 and start_after is not None:
            continue  # keeps the case count down; max_keys=1 is covered by the walk below
        page = await storage.list_objects(BUCKET, prefix=prefix, delimiter=delimiter, start_after=start_after,
                                          max_keys=max_keys)
        want = reference(listed, prefix, delimiter, start_after, max_keys)
        assert as_reference(page) == want, (prefix, delimiter, start_after, max_keys)


@pytest.mark.parametrize("delimiter", [None, "/", "."])
async def test_listing_page_by_page_visits_each_entry_once(storage: Storage, listed: list[str],
                                                           delimiter: str | None) -> None:
    seen: list[str] = []
    marker = None
    while True:
        page = await storage.list_objects(BUCKET, delimiter=delimiter, start_after=marker, max_keys=2)
        assert as_reference(page) == reference(listed, "", delimiter, marker, 2)
        seen += sorted([o.key for o in page.objects] + list(page.common_prefixes), key=utf8)
        if not page.is_truncated:
            break
        marker = page.next_marker
    whole = reference(listed, "", delimiter)
    assert seen == sorted(whole[0] + whole[1], key=utf8)


async def test_listed_objects_carry_size_etag_and_time(storage: Storage, bucket: str) -> None:
    written = await put(storage, "dir/obj", b"12345")
    [entry] = (await storage.list_objects(bucket, prefix="dir/")).objects
    assert (entry.key, entry.size, entry.etag) == ("dir/obj", 5, written.etag)
    assert abs(entry.last_modified - written.last_modified) < 5


async def test_an_empty_bucket_and_max_keys_zero_list_nothing(storage: Storage, bucket: str) -> None:
    assert as_reference(await storage.list_objects(bucket)) == ([], [], False, None)
    await put(storage, "k", b"")
    assert as_reference(await storage.list_objects(bucket, max_keys=0)) == ([], [], False, None)
