"""Who may sign requests: principals, their access keys and bearer tokens.

Identities file (TOML, path given by the operator)::

    [[principal]]
    arn = "arn:aws:iam::111122223333:user/alice"      # or ...:role/<path/name>
    tokens = ["<bearer token, 32..512 characters>"]    # optional, gateway only
    account_actions = ["kms:CreateKey", "kms:List*"]   # optional, see below
    policy = '''{"Version": "2012-10-17", "Statement": [...]}'''  # optional identity policy

    [[principal.access_keys]]
    access_key_id = "AKIAALICE00000000001"              # 16..128 of [A-Z0-9]
    secret_access_key = "<16..128 printable characters>"

The account root (``arn:aws:iam::<account>:root``) is never declared in the file: its access key
comes from ``KMSGATE_ROOT_ACCESS_KEY_ID`` / ``KMSGATE_ROOT_SECRET_ACCESS_KEY``, or, when both are
unset, from ``<data-dir>/credentials``, which is generated at first start (mode 0600, an AWS
shared-credentials file with one profile ``kmsgate``). Its bearer token comes from
``KMSGATE_ROOT_TOKEN`` when set.

``policy`` is the principal's identity policy, an IAM policy document (``Version``, ``Statement``
with ``Effect``, ``Action``/``NotAction``, ``Resource``/``NotResource``, ``Condition``; no
``Principal``), evaluated by the same engine as key policies (``kmsgate.auth.policy``). It decides
the object actions (``s3:GetObject``, ``s3:PutObject``, ``s3:DeleteObject``, ``s3:ListBucket`` on
``arn:aws:s3:::<bucket>/<key>`` and ``arn:aws:s3:::<bucket>``) and may also allow account-level KMS
actions. ``account_actions`` is shorthand for the latter: the account-level actions
(``kms:CreateKey``, ``kms:ListKeys``…) a non-root principal may call. Key-scoped KMS actions are
decided by key policies and grants only.

Access key ids are identifiers, not secrets; secrets and tokens never appear in ``repr``, logs or
errors. Tokens are kept only as SHA-256 digests and compared in constant time.
"""

from __future__ import annotations

import base64
import configparser
import hashlib
import hmac
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kmsgate.auth.policy import KeyPolicy, parse_identity_policy
from kmsgate.core.errors import MalformedPolicyDocumentError
from kmsgate.core.principal import Caller
from kmsgate.private_files import refusal, shared_mode

ROOT_ACCESS_KEY_ENV = "KMSGATE_ROOT_ACCESS_KEY_ID"
ROOT_SECRET_KEY_ENV = "KMSGATE_ROOT_SECRET_ACCESS_KEY"
ROOT_TOKEN_ENV = "KMSGATE_ROOT_TOKEN"
CREDENTIALS_FILE_NAME = "credentials"
CREDENTIALS_PROFILE = "kmsgate"

MAX_IDENTITIES_FILE_BYTES = 1024 * 1024
MIN_TOKEN_CHARS = 32
MAX_TOKEN_CHARS = 512

# Account-level actions every authenticated principal may call: they reveal only key ids and
# alias names (as an IAM user with the AWS-managed read-only KMS policy would see them).
DEFAULT_ACCOUNT_ACTIONS: tuple[str, ...] = (
    "kms:ListKeys",
    "kms:ListAliases",
    "kms:ListRetirableGrants",
    "kms:GenerateRandom",
)

_ACCESS_KEY_ID_RE = re.compile(r"[A-Z0-9]{16,128}")
_SECRET_RE = re.compile(r"[\x21-\x7e]{16,128}")
_TOKEN_RE = re.compile(r"[\x21-\x7e]{%d,%d}" % (MIN_TOKEN_CHARS, MAX_TOKEN_CHARS))
_PRINCIPAL_ARN_RE = re.compile(
    r"arn:aws:iam::(?P<account>\d{12}):(?:(?P<root>root)|(?:user|role)/[\w+=,.@-]+(?:/[\w+=,.@-]+)*)"
)
_ACCOUNT_ACTION_RE = re.compile(r"kms:[A-Za-z*?]+|\*")


class IdentitiesError(ValueError):
    """The identities file or the root credentials are unusable (a start-up error, not an API error)."""


@dataclass(frozen=True, slots=True)
class AccessKey:
    """One access key id / secret pair of a principal."""

    access_key_id: str
    secret_access_key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Principal:
    """A declared identity: its ARN and what it may call outside key policies."""

    arn: str
    account_id: str
    account_actions: tuple[str, ...] = DEFAULT_ACCOUNT_ACTIONS
    policy: KeyPolicy | None = field(default=None, compare=False, repr=False)
    """The identity policy, if the identities file gives one."""

    @property
    def is_account_root(self) -> bool:
        return self.arn == f"arn:aws:iam::{self.account_id}:root"

    def caller(self, access_key_id: str | None = None, source_ip: str | None = None) -> Caller:
        return Caller(
            arn=self.arn, account_id=self.account_id, access_key_id=access_key_id, source_ip=source_ip
        )


@dataclass(frozen=True, slots=True)
class RootCredentials:
    """The account root's access key and where it came from: ``env``, ``file`` or ``generated``."""

    access_key: AccessKey
    source: str
    path: Path | None = None


@dataclass(frozen=True, slots=True)
class IdentityDirectory:
    """Immutable lookup of principals by access key id and by bearer token."""

    account_id: str
    _by_access_key: Mapping[str, tuple[Principal, AccessKey]] = field(repr=False)
    _token_digests: tuple[tuple[bytes, Principal], ...] = field(repr=False)
    principals: tuple[Principal, ...] = ()
    _by_arn: Mapping[str, Principal] = field(default_factory=dict, repr=False)

    def lookup_access_key(self, access_key_id: str) -> tuple[Principal, AccessKey] | None:
        """The principal and key for ``access_key_id``, or ``None`` when unknown."""
        return self._by_access_key.get(access_key_id)

    def lookup_token(self, token: str) -> Principal | None:
        """The principal holding bearer ``token``, or ``None``.

        Compares the token's digest with every stored digest without stopping early.
        """
        if not MIN_TOKEN_CHARS <= len(token) <= MAX_TOKEN_CHARS:
            return None
        digest = _token_digest(token)
        found: Principal | None = None
        for stored, principal in self._token_digests:
            if hmac.compare_digest(stored, digest):
                found = principal
        return found

    def principal(self, arn: str) -> Principal | None:
        return self._by_arn.get(arn)


def _token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def parse_principal_arn(arn: str) -> tuple[str, bool]:
    """(account id, is root) of an IAM user, role or root ARN; ``ValueError`` otherwise."""
    match = _PRINCIPAL_ARN_RE.fullmatch(arn) if len(arn) <= 2048 else None
    if match is None:
        raise ValueError(f"not an IAM user, role or root ARN: {arn[:200]!r}")
    return match["account"], match["root"] is not None


def build_directory(
    account_id: str,
    root: RootCredentials,
    document: Mapping[str, Any] | None = None,
    *,
    root_token: str | None = None,
) -> IdentityDirectory:
    """Validate a parsed identities document and index it with the root's credentials."""
    root_principal = Principal(
        arn=f"arn:aws:iam::{account_id}:root", account_id=account_id, account_actions=("*",)
    )
    by_key: dict[str, tuple[Principal, AccessKey]] = {}
    tokens: list[tuple[bytes, Principal]] = []
    principals = [root_principal]

    def add_key(principal: Principal, key: AccessKey) -> None:
        if key.access_key_id in by_key:
            raise IdentitiesError(f"access key id {key.access_key_id} is declared twice")
        by_key[key.access_key_id] = (principal, key)

    def add_token(principal: Principal, token: str) -> None:
        if not isinstance(token, str) or not _TOKEN_RE.fullmatch(token):
            raise IdentitiesError(
                f"a bearer token of {principal.arn} is not {MIN_TOKEN_CHARS}..{MAX_TOKEN_CHARS} "
                "printable characters"
            )
        digest = _token_digest(token)
        if any(hmac.compare_digest(digest, other) for other, _ in tokens):
            raise IdentitiesError(f"a bearer token of {principal.arn} is declared twice")
        tokens.append((digest, principal))

    _check_access_key(root.access_key, "the account root")
    add_key(root_principal, root.access_key)
    if root_token is not None:
        add_token(root_principal, root_token)

    entries = (document or {}).get("principal", [])
    if not isinstance(entries, list):
        raise IdentitiesError("'principal' must be an array of tables ([[principal]])")
    for index, entry in enumerate(entries):
        where = f"principal #{index + 1}"
        if not isinstance(entry, dict):
            raise IdentitiesError(f"{where} is not a table")
        unknown = set(entry) - {"arn", "access_keys", "tokens", "account_actions", "policy"}
        if unknown:
            raise IdentitiesError(f"{where}: unknown fields {sorted(unknown)}")
        arn = entry.get("arn")
        if not isinstance(arn, str):
            raise IdentitiesError(f"{where}: 'arn' is required")
        try:
            principal_account, is_root = parse_principal_arn(arn)
        except ValueError as exc:
            raise IdentitiesError(f"{where}: {exc}") from exc
        if is_root:
            raise IdentitiesError(f"{where}: the account root takes its credentials from the environment")
        if principal_account != account_id:
            raise IdentitiesError(f"{where}: {arn} is not in account {account_id}")
        if any(p.arn == arn for p in principals):
            raise IdentitiesError(f"{where}: {arn} is declared twice")
        actions = entry.get("account_actions", list(DEFAULT_ACCOUNT_ACTIONS))
        if not isinstance(actions, list) or not all(
            isinstance(a, str) and _ACCOUNT_ACTION_RE.fullmatch(a) for a in actions
        ):
            raise IdentitiesError(f"{where}: 'account_actions' must be a list like [\"kms:CreateKey\"]")
        policy = entry.get("policy")
        if policy is not None:
            if not isinstance(policy, str):
                raise IdentitiesError(f"{where}: 'policy' must be a string holding an IAM policy document (JSON)")
            try:
                policy = parse_identity_policy(policy)
            except MalformedPolicyDocumentError as exc:
                raise IdentitiesError(f"{where}: policy: {exc.message}") from None
        principal = Principal(arn=arn, account_id=account_id, account_actions=tuple(actions), policy=policy)
        principals.append(principal)
        for key_entry in _list_of(entry, "access_keys", where):
            if not isinstance(key_entry, dict) or set(key_entry) != {"access_key_id", "secret_access_key"}:
                raise IdentitiesError(
                    f"{where}: each access key needs exactly access_key_id and secret_access_key"
                )
            key = AccessKey(key_entry["access_key_id"], key_entry["secret_access_key"])
            _check_access_key(key, arn)
            add_key(principal, key)
        for token in _list_of(entry, "tokens", where):
            add_token(principal, token)

    return IdentityDirectory(
        account_id=account_id,
        _by_access_key=dict(by_key),
        _token_digests=tuple(tokens),
        principals=tuple(principals),
        _by_arn={principal.arn: principal for principal in principals},
    )


def _list_of(entry: Mapping[str, Any], name: str, where: str) -> list[Any]:
    value = entry.get(name, [])
    if not isinstance(value, list):
        raise IdentitiesError(f"{where}: '{name}' must be a list")
    return value


def _check_access_key(key: AccessKey, owner: str) -> None:
    if not isinstance(key.access_key_id, str) or not _ACCESS_KEY_ID_RE.fullmatch(key.access_key_id):
        raise IdentitiesError(f"an access key id of {owner} is not 16..128 characters of A-Z and 0-9")
    if not isinstance(key.secret_access_key, str) or not _SECRET_RE.fullmatch(key.secret_access_key):
        raise IdentitiesError(
            f"the secret of access key {key.access_key_id} is not 16..128 printable characters"
        )


def parse_identities(text: str) -> dict[str, Any]:
    """Parse identities TOML text (no validation beyond TOML syntax; see ``build_directory``)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise IdentitiesError(f"identities file is not valid TOML: {exc}") from exc


def load_identities_file(path: Path) -> dict[str, Any]:
    """Read and parse the identities file at ``path`` (refused when group or others may read it: it holds
    secret access keys and bearer tokens)."""
    mode = shared_mode(path)
    if mode is not None:
        raise IdentitiesError(refusal("identities file", path, mode))
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_IDENTITIES_FILE_BYTES + 1)
    except OSError as exc:
        raise IdentitiesError(f"cannot read identities file {path}: {exc.strerror}") from exc
    if len(raw) > MAX_IDENTITIES_FILE_BYTES:
        raise IdentitiesError(f"identities file {path} is larger than {MAX_IDENTITIES_FILE_BYTES} bytes")
    try:
        return parse_identities(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise IdentitiesError(f"identities file {path} is not UTF-8") from exc


ROOT_TOKEN_FILE_NAME = "root-token"


def generate_access_key() -> AccessKey:
    """A fresh root access key: ``AKIA`` + 16 base32 characters, and a 40-character secret."""
    key_id = "AKIA" + base64.b32encode(os.urandom(10)).decode()[:16]
    return AccessKey(key_id, secrets.token_urlsafe(30))


def load_root_credentials(
    env: Mapping[str, str], data_dir: Path, region: str | None = None
) -> RootCredentials:
    """The root access key from ``env``, else ``<data_dir>/credentials``, generating that file once.

    A generated file also names ``region`` so that ``aws --profile kmsgate`` needs no other setting.
    """
    key_id = env.get(ROOT_ACCESS_KEY_ENV)
    secret = env.get(ROOT_SECRET_KEY_ENV)
    if key_id or secret:
        if not (key_id and secret):
            raise IdentitiesError(f"set both {ROOT_ACCESS_KEY_ENV} and {ROOT_SECRET_KEY_ENV}, or neither")
        key = AccessKey(key_id, secret)
        _check_access_key(key, "the account root")
        return RootCredentials(key, "env")
    path = data_dir / CREDENTIALS_FILE_NAME
    if path.exists():
        return RootCredentials(_read_credentials_file(path), "file", path)
    key = generate_access_key()
    _write_credentials_file(path, key, region)
    return RootCredentials(key, "generated", path)


def root_token(env: Mapping[str, str], data_dir: Path | None = None) -> str | None:
    """The root's bearer token: ``KMSGATE_ROOT_TOKEN`` if set, else ``<data_dir>/root-token``.

    That file is generated at first start (mode 0600) so that a fresh install's gateway can be
    used at once: ``curl -H "Authorization: Bearer $(cat data/root-token)" ...``.
    """
    from_env = env.get(ROOT_TOKEN_ENV)
    if from_env or data_dir is None:
        return from_env or None
    path = data_dir / ROOT_TOKEN_FILE_NAME
    if not path.exists():
        token = secrets.token_urlsafe(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            try:
                os.write(fd, token.encode() + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
    mode = shared_mode(path)
    if mode is not None:  # the account root's token: as secret as the identities file's
        raise IdentitiesError(refusal("root token file", path, mode))
    try:
        return path.read_text("utf-8").strip() or None
    except (OSError, UnicodeDecodeError) as exc:
        raise IdentitiesError(f"cannot read the root token from {path}") from exc


def _read_credentials_file(path: Path) -> AccessKey:
    mode = shared_mode(path)
    if mode is not None:  # the account root's secret access key: as secret as the identities file's
        raise IdentitiesError(refusal("root credentials file", path, mode))
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text("utf-8"), source=str(path))
        section = parser[CREDENTIALS_PROFILE]
        key = AccessKey(section["aws_access_key_id"], section["aws_secret_access_key"])
    except (OSError, UnicodeDecodeError, configparser.Error, KeyError) as exc:
        raise IdentitiesError(
            f"{path} has no usable [{CREDENTIALS_PROFILE}] profile ({type(exc).__name__})"
        ) from exc
    _check_access_key(key, "the account root")
    return key


def _write_credentials_file(path: Path, key: AccessKey, region: str | None) -> None:
    text = (
        f"[{CREDENTIALS_PROFILE}]\n"
        f"aws_access_key_id = {key.access_key_id}\n"
        f"aws_secret_access_key = {key.secret_access_key}\n"
    )
    if region is not None:
        text += f"region = {region}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def load_directory(
    account_id: str,
    env: Mapping[str, str],
    data_dir: Path,
    identities_path: Path | None = None,
    region: str | None = None,
) -> tuple[IdentityDirectory, RootCredentials]:
    """Everything at start-up: root credentials, root token and the optional identities file."""
    root = load_root_credentials(env, data_dir, region)
    document = load_identities_file(identities_path) if identities_path is not None else None
    return build_directory(account_id, root, document, root_token=root_token(env, data_dir)), root

