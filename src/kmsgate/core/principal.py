"""Who is calling: the authenticated principal a request acts as."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated principal.

    ``arn`` is ``arn:aws:iam::<account>:root``, ``...:user/<name>`` or ``...:role/<name>``.
    ``access_key_id`` is the credential the request was signed with (``None`` in-process).
    """

    arn: str
    account_id: str
    access_key_id: str | None = None
    source_ip: str | None = None

    @property
    def is_account_root(self) -> bool:
        return self.arn == f"arn:aws:iam::{self.account_id}:root"


def account_root(account_id: str) -> Caller:
    """The account's root principal, as in-process callers act by default."""
    return Caller(arn=f"arn:aws:iam::{account_id}:root", account_id=account_id)
