"""How callers name a key: key id, key ARN, alias name or alias ARN, and which forms each operation takes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from kmsgate.core.errors import InvalidAliasNameError, InvalidArnError, NotFoundError

ALIAS_PREFIX = "alias/"
PARSED_KEY_REFS = 1024  # remembered parses (KeyId values are at most 2048 characters)
RESERVED_ALIAS_PREFIX = "alias/aws/"
_ALIAS_RE = re.compile(r"^alias/[a-zA-Z0-9/_-]+$")
_CANONICAL_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_ARN_RE = re.compile(r"^arn:(?P<partition>[^:]+):kms:(?P<region>[^:]*):(?P<account>[^:]*):(?P<resource>.+)$")


@dataclass(frozen=True, slots=True)
class KeyRef:
    """A parsed reference: exactly one of ``key_id`` and ``alias_name`` is set."""

    key_id: str | None = None
    alias_name: str | None = None


@dataclass(frozen=True, slots=True)
class Namespace:
    """The region and account that ARNs are minted in and resolved against."""

    region: str
    account_id: str

    def key_arn(self, key_id: str) -> str:
        return f"arn:aws:kms:{self.region}:{self.account_id}:key/{key_id}"

    def alias_arn(self, alias_name: str) -> str:
        return f"arn:aws:kms:{self.region}:{self.account_id}:{alias_name}"

    def parse(self, text: str, *, allow_alias: bool) -> KeyRef:
        """Parse a KeyId parameter. Aliases are rejected with NotFound where AWS takes only keys.

        Clients name the same few keys in request after request, so results (never errors) are
        remembered in a small cache per namespace, text and form.
        """
        return _parse_cached(self, text, allow_alias)

    def _parse(self, text: str, allow_alias: bool) -> KeyRef:
        if text.startswith("arn:"):
            match = _ARN_RE.match(text)
            if match is None:
                raise InvalidArnError(f"Invalid arn {text}")
            if match["region"] != self.region or match["account"] != self.account_id:
                raise NotFoundError(f"Key '{text}' does not exist")
            resource = match["resource"]
            if resource.startswith("key/"):
                return KeyRef(key_id=self._key_id(resource[4:], text))
            if resource.startswith(ALIAS_PREFIX):
                if not allow_alias:
                    raise NotFoundError(f"Invalid keyId '{text}'")
                return KeyRef(alias_name=resource)
            raise InvalidArnError(f"Invalid arn {text}")
        if text.startswith(ALIAS_PREFIX):
            if not allow_alias:
                raise NotFoundError(f"Invalid keyId '{text}'")
            return KeyRef(alias_name=text)
        return KeyRef(key_id=self._key_id(text, text))

    @staticmethod
    def _key_id(candidate: str, original: str) -> str:
        """A key id is a UUID in its canonical 8-4-4-4-12 form (any case); returned lower-case."""
        if _CANONICAL_UUID_RE.fullmatch(candidate) is None:
            raise NotFoundError(f"Invalid keyId '{original}'")
        return candidate.lower()


@lru_cache(maxsize=PARSED_KEY_REFS)
def _parse_cached(namespace: Namespace, text: str, allow_alias: bool) -> KeyRef:
    return namespace._parse(text, allow_alias)


def check_alias_name(alias_name: str) -> None:
    """Raise ``InvalidAliasNameError`` unless this is a name a customer may create."""
    if not alias_name.startswith(ALIAS_PREFIX) or not _ALIAS_RE.match(alias_name):
        raise InvalidAliasNameError(
            f"Alias '{alias_name}' must start with 'alias/' and contain only alphanumeric characters, "
            "forward slashes (/), underscores (_), and dashes (-)"
        )
    if alias_name.startswith(RESERVED_ALIAS_PREFIX):
        raise InvalidAliasNameError(f"Alias '{alias_name}' uses the reserved prefix 'alias/aws/'")
