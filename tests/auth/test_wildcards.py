"""The IAM wildcard matcher: ``*`` and ``?`` as IAM reads them, and no pattern makes a match costly."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmsgate.auth.wildcards import glob_match


def reference_match(pattern: str, value: str) -> bool:
    """The textbook dynamic programme: ``ok[j]`` is whether ``pattern[:i]`` matches ``value[:j]``."""
    ok = [True] + [False] * len(value)
    for p in pattern:
        if p == "*":
            for j in range(1, len(value) + 1):
                ok[j] = ok[j] or ok[j - 1]
        else:
            ok = [False] + [ok[j] and (p == "?" or p == value[j]) for j in range(len(value))]
    return ok[len(value)]


@pytest.mark.parametrize(
    "pattern, value, expected",
    [
        ("*", "", True),
        ("*", "anything", True),
        ("", "", True),
        ("", "a", False),
        ("kms:Encrypt", "kms:Encrypt", True),
        ("kms:Encrypt", "kms:Encrypt2", False),
        ("kms:GenerateDataKey*", "kms:GenerateDataKeyWithoutPlaintext", True),
        ("kms:GenerateDataKey*", "kms:GenerateDataKe", False),
        ("kms:*Key", "kms:DescribeKey", True),
        ("kms:*Key", "kms:DescribeKeys", False),
        ("alias/app-?", "alias/app-1", True),
        ("alias/app-?", "alias/app-10", False),
        ("alias/app-?", "alias/app-", False),
        ("a?c", "abc", True),
        ("a?c", "ac", False),
        ("ab*ba", "aba", False),
        ("ab*ba", "abba", True),
        ("a*b*c", "axxbyyc", True),
        ("a*b*c", "axxcyyb", False),
        ("*a?b*", "xxaqbyy", True),
        ("*a?b*", "xxabyy", False),
        ("a**b", "ab", True),
        ("?*?", "a", False),
        ("?*?", "ab", True),
        # Nothing but * and ? is special.
        ("alias/[ab]", "alias/a", False),
        ("alias/[ab]", "alias/[ab]", True),
        ("a.c", "abc", False),
        ("a\\*", "a\\xyz", True),
        ("arn:aws:kms:*:111122223333:key/*", "arn:aws:kms:us-east-1:111122223333:key/1234", True),
        ("arn:aws:kms:*:111122223333:key/*", "arn:aws:kms:us-east-1:444455556666:key/1234", False),
    ],
)
def test_wildcards_match_as_iam_reads_them(pattern: str, value: str, expected: bool) -> None:
    assert glob_match(pattern, value) is expected
    assert reference_match(pattern, value) is expected


def test_ignore_case_folds_both_sides() -> None:
    assert glob_match("KMS:generate*", "kms:GenerateDataKey", ignore_case=True)
    assert not glob_match("KMS:generate*", "kms:GenerateDataKey")


@settings(max_examples=500, deadline=None)
@given(
    pattern=st.text(alphabet="ab*?", max_size=12),
    value=st.text(alphabet="abc", max_size=12),
)
def test_agrees_with_the_reference_on_every_small_case(pattern: str, value: str) -> None:
    assert glob_match(pattern, value) is reference_match(pattern, value)


def test_stars_between_repeated_letters_do_not_backtrack() -> None:
    # A backtracking regular expression from this pattern tries every split of the value among
    # the stars before giving up; a match that never backtracks is done at once.
    pattern = "a*" * 2000 + "b"
    value = "a" * 64 * 1024
    assert glob_match(pattern, value) is False
    assert glob_match(pattern, value + "b") is True


def test_question_marks_between_stars_do_not_backtrack() -> None:
    pattern = "*" + "a?" * 1000 + "b*" + "a*" * 1000 + "c"
    value = "a" * 64 * 1024
    assert glob_match(pattern, value) is False
