"""Files that hold secrets (the root key, the identities file) must be private to the service's user."""

from __future__ import annotations

import os
import stat
from pathlib import Path

# Any access by group or others: a secret readable (or replaceable) by another user is no secret.
SHARED_BITS = stat.S_IRWXG | stat.S_IRWXO


def shared_mode(path: Path) -> int | None:
    """The permission bits of ``path`` (its target, for a symbolic link) when group or others have any
    access to it, else ``None``. A file that cannot be stat'ed is the caller's reading error to report."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return stat.S_IMODE(mode) if mode & SHARED_BITS else None


def refusal(what: str, path: Path, mode: int) -> str:
    """The one-line reason a start refuses ``path``, naming the file and its mode (never its contents)."""
    return f"{what} {path} is readable by group or others (mode {mode:04o}); make it 0600 or 0400"
