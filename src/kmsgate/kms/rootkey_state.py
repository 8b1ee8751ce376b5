"""What a key store records about its root key, and the checks every store makes against it.

Settings rows (in the ``settings`` table of either store)::

    root_key_check               HMAC check value of the root key the store's wrapped values are under
    root_key_next_check          a rotation is staging wraps under this root key (not yet in force)
    root_key_previous_check      the root key the last rotation replaced (for a clearer refusal)
    root_key_rotation_cleanup    "1" from a rotation's switch until its working table is dropped
    root_key_retired_token_keys  JSON [{"wrapped": base64, "until": POSIX seconds}]: token-sealing keys
                                 of retired root keys, wrapped under the current one, kept while
                                 import tokens they sealed may still be presented

``settle`` runs when a store opens: the first opening records the check value (a SQLite store
written before check values existed is first tried against one wrapped material row), a store
opened with another root key is refused, and the returned root key also opens import tokens
sealed under a retired root key. ``require_active`` runs in every write transaction, so a node
still holding a root key that a rotation replaced writes nothing wrapped under it.
"""

from __future__ import annotations

import base64
import time

import orjson

from kmsgate.core.errors import KmsInternalError
from kmsgate.kms.rootkey import RootKey, RootKeyError
from kmsgate.kms.sql import Connection

ROOT_KEY_CHECK = "root_key_check"
ROOT_KEY_NEXT_CHECK = "root_key_next_check"
ROOT_KEY_PREVIOUS_CHECK = "root_key_previous_check"
ROOT_KEY_ROTATION_CLEANUP = "root_key_rotation_cleanup"
RETIRED_TOKEN_KEYS = "root_key_retired_token_keys"

Settings = dict[str, str]


def read_settings(conn: Connection) -> Settings:
    return {str(name): str(value) for name, value in conn.execute("SELECT name, value FROM settings").fetchall()}


def put_setting(conn: Connection, name: str, value: str) -> None:
    conn.execute(
        "INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (name, value),
    )


def delete_setting(conn: Connection, name: str) -> None:
    conn.execute("DELETE FROM settings WHERE name = ?", (name,))


def refusal(settings: Settings, root_key: RootKey) -> str:
    """Why ``root_key`` does not open a store with these settings (names no secret)."""
    if root_key.matches_check(settings.get(ROOT_KEY_PREVIOUS_CHECK, "")):
        return (
            "this root key was replaced by 'kmsgate root-key rotate'; start with the new root key "
            "(if the rotation was interrupted, run it again to finish it)"
        )
    if root_key.matches_check(settings.get(ROOT_KEY_NEXT_CHECK, "")):
        return (
            "a rotation to this root key has not finished; run 'kmsgate root-key rotate' again to finish it, "
            "or start with the current root key"
        )
    return "the root key is not the one this key store was created with; every node needs the same root key"


def settle(conn: Connection, root_key: RootKey, now: float | None = None) -> RootKey:
    """Record or check the store's root key (inside a write transaction); returns it with retired token keys."""
    settings = read_settings(conn)
    check = settings.get(ROOT_KEY_CHECK)
    if check is None:
        _try_on_material(conn, root_key)
        conn.execute(
            "INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
            (ROOT_KEY_CHECK, root_key.check_value()),
        )
        settings = read_settings(conn)
        check = settings[ROOT_KEY_CHECK]
    if not root_key.matches_check(check):
        raise RootKeyError(refusal(settings, root_key))
    return root_key.with_retired_token_keys(retired_token_keys(settings, root_key, time.time() if now is None else now))


def require_active(conn: Connection, root_key: RootKey) -> None:
    """Refuse a write by a process whose root key is no longer the store's (a rotation switched it)."""
    row = conn.execute("SELECT value FROM settings WHERE name = ?", (ROOT_KEY_CHECK,)).fetchone()
    if row is not None and not root_key.matches_check(str(row[0])):
        raise KmsInternalError(
            "The key store's root key was rotated: restart this node with the new root key"
        )


def retired_token_keys(settings: Settings, root_key: RootKey, now: float) -> list[bytes]:
    """The token-sealing keys of retired root keys still in their tokens' lifetime, unwrapped."""
    return [root_key.unwrap_retired_token_key(wrapped) for wrapped, until in _retired(settings) if until > now]


def rewrap_retired_token_keys(settings: Settings, current: RootKey, new: RootKey, now: float, until: float) -> str:
    """The retired-token-keys setting for after ``current`` is replaced by ``new`` (``current``'s own kept to ``until``)."""
    kept = [
        (new.rewrap_retired_token_key(current, wrapped), expires)
        for wrapped, expires in _retired(settings)
        if expires > now
    ]
    kept.append((new.wrap_retired_token_key(current), until))
    return orjson.dumps(
        [{"wrapped": base64.b64encode(wrapped).decode("ascii"), "until": expires} for wrapped, expires in kept]
    ).decode("ascii")


def _retired(settings: Settings) -> list[tuple[bytes, float]]:
    raw = settings.get(RETIRED_TOKEN_KEYS)
    if not raw:
        return []
    return [(base64.b64decode(entry["wrapped"]), float(entry["until"])) for entry in orjson.loads(raw)]


def _try_on_material(conn: Connection, root_key: RootKey) -> None:
    """A store with wrapped material but no check value yet: the root key must open that material."""
    row = conn.execute("SELECT key_id, version, wrapped FROM materials LIMIT 1").fetchone()
    if row is None:
        return
    try:
        root_key.unwrap_material(str(row[0]), int(row[1]), bytes(row[2]))
    except RootKeyError:
        raise RootKeyError(
            "the root key is not the one this key store was created with; every node needs the same root key"
        ) from None
