"""IAM wildcard matching (``*`` any run of characters, ``?`` any one) without backtracking.

Policy patterns come from key administrators and the values they are matched against come from
callers (an encryption-context value, an alias), so neither may be able to make one match
expensive. A regular expression built from ``a*a*a*…b`` backtracks exponentially; this matcher
never backtracks:

* The pattern is split at its ``*`` runs into segments of literal characters and ``?``.
* With no ``*`` the value must be exactly the one segment. Otherwise the first segment is matched
  at the start of the value, the last at the end, and each middle segment at its leftmost place
  after the previous one. Leftmost placement is always right: whatever a later placement leaves
  for the rest of the pattern, an earlier one leaves more, and the ``*`` between absorbs the gap.
* A segment is a list of literal pieces at fixed offsets (its ``?`` are the gaps between them).
  A segment of one piece is found with ``str.find``. A segment of several pieces is found by
  one forward pass of a bit-parallel (shift-and) automaton, started where ``str.find`` first sees
  its longest piece: one step per value character, the segment's offsets held as bits of an int.

Middle segments are searched for in disjoint stretches of the value, so a whole match takes at
most one step per value character plus ``str`` searches, however many ``*`` and ``?`` the pattern
has: O(len(value) × (1 + len(pattern) / 64)) word operations at worst, never exponential. Nothing
else in a pattern is special: ``[``, ``\\``, ``.`` are literal.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True, slots=True)
class _Segment:
    """Literal ``pieces`` at their offsets within a run of ``length`` characters (the rest are ``?``).

    ``masks`` maps each literal character to the bit set of the offsets holding it or a ``?``;
    ``wild`` is the bit set of the ``?`` offsets (what any other character may occupy).
    """

    length: int
    pieces: tuple[tuple[int, str], ...]
    masks: dict[str, int]
    wild: int

    @classmethod
    def parse(cls, text: str) -> _Segment:
        pieces: list[tuple[int, str]] = []
        offset = 0
        for piece in text.split("?"):
            if piece:
                pieces.append((offset, piece))
            offset += len(piece) + 1
        pieces.sort(key=lambda piece: -len(piece[1]))  # the longest first: the one searched for
        wild = sum(1 << index for index, char in enumerate(text) if char == "?") if len(pieces) > 1 else 0
        masks: dict[str, int] = {}
        if len(pieces) > 1:
            for index, char in enumerate(text):
                if char != "?":
                    masks[char] = masks.get(char, wild) | 1 << index
        return cls(len(text), tuple(pieces), masks, wild)

    def at(self, value: str, position: int) -> bool:
        """Whether the segment matches ``value`` at ``position`` (which leaves room for it)."""
        return all(value.startswith(piece, position + offset) for offset, piece in self.pieces)

    def find(self, value: str, start: int, stop: int) -> int:
        """The leftmost position in ``[start, stop - length]`` where the segment matches, or -1."""
        last = stop - self.length
        if last < start:
            return -1
        if not self.pieces:
            return start
        offset, anchor = self.pieces[0]
        found = value.find(anchor, start + offset, last + offset + len(anchor))
        if found < 0 or len(self.pieces) == 1:
            return found - offset if found >= 0 else -1
        # Pieces separated by ``?``: one pass of the shift-and automaton from the first place the
        # longest piece allows. Bit i of ``state``: the segment's first i + 1 characters match the
        # value's characters up to ``index``. Each value character costs one step, whatever the
        # pattern, and never more than one pass is made over any part of the value.
        masks, wild, accept = self.masks, self.wild, 1 << (self.length - 1)
        begin = found - offset
        state = 0
        for index in range(begin, stop):
            state = (state << 1 | 1) & masks.get(value[index], wild)
            if state & accept:
                return index - self.length + 1
        return -1


@dataclass(frozen=True, slots=True)
class _Pattern:
    head: _Segment
    middle: tuple[_Segment, ...]
    tail: _Segment | None  # None: the pattern has no ``*``, ``head`` is all of it

    def matches(self, value: str) -> bool:
        head, tail = self.head, self.tail
        if tail is None:
            return len(value) == head.length and head.at(value, 0)
        end = len(value) - tail.length
        if end < head.length or not head.at(value, 0) or not tail.at(value, end):
            return False
        position = head.length
        for segment in self.middle:
            found = segment.find(value, position, end)
            if found < 0:
                return False
            position = found + segment.length
        return True


@lru_cache(maxsize=1024)
def _compile(pattern: str) -> _Pattern:
    parts = pattern.split("*")
    segments = [_Segment.parse(part) for part in parts]
    if len(segments) == 1:
        return _Pattern(segments[0], (), None)
    middle = tuple(segment for segment in segments[1:-1] if segment.length)
    return _Pattern(segments[0], middle, segments[-1])


def glob_match(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """Whether ``value`` matches ``pattern`` in full (``*`` any run of characters, ``?`` any one)."""
    if ignore_case:
        pattern, value = pattern.lower(), value.lower()
    if "*" not in pattern and "?" not in pattern:
        return pattern == value
    return _compile(pattern).matches(value)
