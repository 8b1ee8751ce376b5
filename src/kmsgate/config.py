"""Configuration: every option of ``kmsgate serve`` declared once, on the frozen ``Config`` itself.

Each option is a field of ``Config`` declared with ``option(...)``: its name, type (the field's
annotation), default, help text and whether it is secret. From that one declaration come the
command-line flag (``--drain-timeout``), the environment variable (``KMSGATE_DRAIN_TIMEOUT``), the
key of the TOML file (``drain_timeout``), ``kmsgate config show`` and the README table. Fields
declared without ``option`` are settings of the code (tests set them), not of an operator.

``load_config`` reads them with the precedence flags > environment > file > defaults. An empty
environment variable is unset, for every option. A value of the wrong type, out of range, or a key
the file does not know is a ``ConfigError``: one line naming the option, where the value came from,
and what was expected (never the value of a secret).
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from kmsgate.auth.audit import FSYNC_POLICIES
from kmsgate.envelope.cache import CacheLimits

T = TypeVar("T")

ENV_PREFIX = "KMSGATE_"
CONFIG_FILE_ENV = "KMSGATE_CONFIG"
SOURCES = ("default", "file", "env", "flag")
LOG_LEVELS = ("debug", "info", "warning", "error")
STORAGES = ("file", "s3")
BUCKET_NAME_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_SHOWN_VALUE_CHARS = 40
_CACHE = CacheLimits()  # the data-key cache's limits, with their reasons, are the cache's own

Check = Callable[[Any], "str | None"]
"""A value check: ``None`` when the value is acceptable, else what was expected ("at least 1")."""


class ConfigError(ValueError):
    """A configuration that cannot be used; ``str()`` is the one line to show the operator."""


@dataclass(frozen=True, slots=True)
class _Declared:
    help: str
    flag: str | None
    secret: bool
    choices: tuple[str, ...]
    check: Check | None
    group: str
    default_text: str | None


def option(default: T, help: str, *, flag: str | None = None, secret: bool = False,
           choices: tuple[str, ...] = (), check: Check | None = None, group: str = "general",
           default_text: str | None = None, default_factory: Callable[[], T] | None = None) -> T:
    """Declare a ``Config`` field as an operator's option (see the module docstring).

    ``flag`` overrides the flag derived from the field name (``--s3-port`` from ``s3_port``);
    ``default_text`` describes a default computed at start (``default_factory``)."""
    declared = _Declared(help, flag, secret, choices, check, group, default_text)
    if default_factory is not None:
        return field(default_factory=default_factory, metadata={"option": declared})
    return field(default=default, metadata={"option": declared})


def _at_least(minimum: int) -> Check:
    return lambda value: None if value >= minimum else f"at least {minimum}"


def _positive(value: float) -> str | None:
    return None if value > 0 else "a positive number"


def _not_negative(value: float) -> str | None:
    return None if value >= 0 else "0 (off) or a positive number"


def _port(value: int) -> str | None:
    return None if 0 <= value <= 65535 else "a port number from 0 to 65535"


_HOST_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def split_host_names(value: str) -> tuple[str, ...]:
    """``--s3-domain``'s comma-separated names, lower-cased, without a trailing dot."""
    return tuple(name.strip().lower().rstrip(".") for name in value.split(",") if name.strip())


def _host_names(value: str) -> str | None:
    for name in split_host_names(value):
        try:
            ipaddress.ip_address(name)
        except ValueError:
            if len(name) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in name.split(".")):
                continue
        return "comma-separated DNS names (not addresses)"
    return None


def _account_id(value: str) -> str | None:
    return None if value.isdigit() and len(value) == 12 else "12 digits"


def _bucket_name(value: str) -> str | None:
    if BUCKET_NAME_RE.fullmatch(value):
        return None
    return "an S3 bucket name (3-63 characters of a-z, 0-9, '.' and '-', starting and ending with a letter or digit)"


def _key_store_url(value: str) -> str | None:
    from kmsgate.kms.stores import KeyStoreUrlError, parse_key_store  # the URL grammar lives with the stores

    try:
        parse_key_store(value, Path("."))
    except KeyStoreUrlError as exc:
        return str(exc)
    return None


def _cpu_count() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class Config:
    # The listeners
    host: str = option("127.0.0.1", "address to listen on; another than loopback needs --tls-cert or --insecure-http")
    port: int = option(8080, "TCP port of the KMS API and the /v1 gateway API", check=_port)
    s3_port: int = option(9000, "TCP port of the S3 API, on the same host; 0 turns it off", check=_port)
    s3_domain: str = option("", "host names (comma-separated) under which <bucket>.<name> addresses a bucket "
                            "(virtual-hosted style), besides localhost and --host when it is a name",
                            check=_host_names)
    tls_cert: Path | None = option(None, "PEM certificate chain served on every port (KMS, /v1, S3); "
                                   "re-read with the key on SIGHUP", group="tls")
    tls_key: Path | None = option(None, "PEM private key of --tls-cert; must not be readable by group or others",
                                  group="tls")
    tls_client_ca: Path | None = option(None, "PEM CA certificate(s): clients must present a certificate they "
                                        "signed", group="tls")
    insecure_http: bool = option(False, "serve plain HTTP on a non-loopback --host (without it kmsgate refuses "
                                 "to start without --tls-cert there)", group="tls")
    # Where keys and objects are kept
    data_dir: Path = option(Path("./data"), "directory for the key store, root key, generated credentials, "
                            "audit log and objects (mode 0700)", default_text="./data")
    region: str = option("us-east-1", "region used in key and alias ARNs")
    account_id: str = option("111122223333", "account id used in ARNs", check=_account_id)
    root_key_file: Path | None = option(None, "file holding the base64 root key; the KMSGATE_ROOT_KEY variable "
                                        "(base64) takes precedence; without either, <data-dir>/root.key is "
                                        "created (mode 0600)")
    key_store: str | None = option(None, "where keys, aliases, policies and grants are kept: sqlite:///path, or "
                                   "postgresql://user:password@host:port/db (TLS parameters as libpq takes them) for "
                                   "several nodes sharing one store", secret=True, check=_key_store_url,
                                   default_text="sqlite in <data-dir>/kms.sqlite3")
    log_level: str = option("info", "log level", choices=LOG_LEVELS)
    insecure_no_auth: bool = option(False, "accept unauthenticated requests as the account root; for local "
                                    "experiments only, refused on a non-loopback address")
    maintenance_interval_seconds: float = 30.0
    identities_file: Path | None = option(None, "TOML file declaring principals, their access keys and bearer "
                                          "tokens", flag="--identities")
    audit_fsync: str = option("batch", "audit log durability: 'batch' fsyncs each group of lines as it is "
                              "written, 'none' leaves it to the OS", choices=FSYNC_POLICIES)
    audit_stdout: bool = option(False, "also write every audit line to stdout")
    workers: int = option(1, "worker processes sharing the port (SO_REUSEPORT) under a supervisor that restarts "
                          "a worker that dies; 0 serves in the supervisor's own process", check=_at_least(0),
                          default_factory=_cpu_count, default_text="the CPU count")
    drain_timeout_seconds: float = option(30.0, "seconds SIGTERM waits for in-flight requests before exiting",
                                          flag="--drain-timeout", check=_not_negative)
    liveness_timeout_seconds: float = option(30.0, "seconds a worker's event loop may go without a heartbeat "
                                             "before the supervisor kills and replaces the worker (logged, and "
                                             "counted in kmsgate_worker_restarts_total{reason=\"unresponsive\"}); "
                                             "0 turns this off", flag="--liveness-timeout", check=_not_negative)
    # Connections (per worker)
    header_timeout_seconds: float = option(20.0, "seconds from a request's first byte to the end of its headers; "
                                           "later is 408 and the connection is closed", flag="--header-timeout",
                                           check=_positive, group="connections (per worker)")
    body_read_timeout_seconds: float = option(30.0, "seconds a request body may stall (no bytes while kmsgate "
                                              "waits for them); then the request is 408 (RequestTimeoutException on "
                                              "the KMS API, RequestTimeout on the gateway)",
                                              flag="--body-read-timeout", check=_positive,
                                              group="connections (per worker)")
    send_timeout_seconds: float = option(30.0, "seconds a response may wait on a client that takes none of it (the "
                                         "send buffer stays full); then the connection is closed",
                                         flag="--send-timeout", check=_positive, group="connections (per worker)")
    idle_timeout_seconds: float = option(75.0, "seconds a connection may stay open without a request (above the 60 s of "
                                         "common load balancers, so they close first)",
                                         flag="--idle-timeout", check=_positive, group="connections (per worker)")
    max_connections: int = option(4096, "open connections per worker; one more is answered 503 and closed at once "
                                  "(raise the file-descriptor limit above this)",
                                  check=_at_least(1), group="connections (per worker)")
    # Gateway
    default_key_alias: str = "alias/kmsgate-default"
    default_bucket: str = option("kmsgate", "bucket name of the /v1/objects API: objects are "
                                 "arn:aws:s3:::<bucket>/<key> in identity policies and in each object's "
                                 "encryption context", check=_bucket_name, group="gateway")
    max_object_size: int = option(5 * 2**30, "largest body accepted by PUT /v1/objects and /v1/encrypt, in "
                                  "bytes; larger is 413", check=_at_least(1), group="gateway",
                                  default_text="5368709120 = 5 GiB")
    max_in_flight: int = option(1024, "authenticated requests handled at once per worker, of the KMS API, /v1 "
                                "and the S3 API together; more are 503 SlowDown with Retry-After on the gateway, "
                                "400 ThrottlingException on the KMS API (requests still authenticating are not "
                                "counted)", check=_at_least(1), group="gateway")
    multipart_max_age_seconds: float = option(7 * 24 * 3600.0, "seconds after which an unfinished multipart "
                                              "upload is aborted and its parts removed, checked by each worker",
                                              flag="--multipart-max-age", check=_positive, group="gateway",
                                              default_text="604800 = 7 days")
    storage: str = option("file", "where objects are stored: 'file' under <data-dir>/objects, or an "
                          "S3-compatible bucket", choices=STORAGES, group="gateway")
    s3_bucket: str | None = option(None, "bucket for --storage s3", group="gateway")
    s3_prefix: str = option("", "key prefix inside the bucket", group="gateway")
    s3_endpoint_url: str | None = option(None, "S3-compatible endpoint; credentials come from the standard AWS "
                                         "chain", group="gateway")
    s3_region: str | None = option(None, "region of the bucket", group="gateway")
    s3_timeout_seconds: float = option(60.0, "seconds one request to the --storage s3 endpoint may wait for it "
                                       "(to connect, then for each read); a request is tried up to 4 times (one "
                                       "streaming a body once), then fails with 504", flag="--s3-timeout",
                                       check=_positive, group="gateway")
    kms_endpoint: str | None = option(None, "make the gateway a client of this AWS-KMS-compatible endpoint "
                                      "(another kmsgate, or AWS KMS) instead of the embedded KMS; credentials "
                                      "from the standard AWS chain; the remote KMS then sees the gateway's own AWS "
                                      "identity, not the caller's", group="gateway",
                                      default_text="the embedded KMS")
    kms_region: str | None = option(None, "region for --kms-endpoint", group="gateway", default_text="--region")
    kms_timeout_seconds: float = option(5.0, "seconds a KMS call may take before the request fails with 503",
                                        flag="--kms-timeout", check=_positive, group="gateway")
    cache_max_age_seconds: float = option(_CACHE.max_age_seconds, "seconds a cached data key may encrypt new messages",
                                          flag="--cache-max-age", check=_positive, group="gateway")
    cache_max_messages: int = option(_CACHE.max_messages, "messages one cached data key may encrypt; 1 turns reuse off (one "
                                     "KMS call per object)", check=_at_least(1), group="gateway")
    cache_max_bytes: int = option(_CACHE.max_bytes, "plaintext bytes one cached data key may encrypt, counted as streams flow",
                                  check=_at_least(1), group="gateway", default_text="68719476736 = 64 GiB")
    cache_capacity: int = option(_CACHE.capacity, "data keys held at once per caller (least recently used leave first)",
                                 check=_at_least(1), group="gateway")

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"


DEFAULTS = Config()
"""The default of every setting, for the code that needs one (``gateway.service`` and others)."""


@dataclass(frozen=True, slots=True)
class Option:
    """One operator option, as declared on ``Config``."""

    name: str  # the Config field
    kind: type  # str, int, float, bool or Path
    optional: bool  # may be unset (None)
    default: Any
    help: str
    flag: str
    secret: bool
    choices: tuple[str, ...]
    check: Check | None
    group: str
    default_text: str | None

    @property
    def key(self) -> str:
        """The key in the TOML file."""
        return self.flag[2:].replace("-", "_")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.key.upper()

    def describe_default(self) -> str:
        if self.default_text is not None:
            return self.default_text
        if self.kind is bool:
            return "on" if self.default else "off"
        if self.default is None:
            return "unset"
        return str(self.default) if str(self.default) else '""'

    def expected(self) -> str:
        if self.choices:
            return f"one of {', '.join(self.choices)}"
        return {int: "a whole number", float: "a number", bool: "true or false", Path: "a path"}.get(
            self.kind, "a string")


def _options() -> tuple[Option, ...]:
    hints = typing.get_type_hints(Config)
    found = []
    for f in dataclasses.fields(Config):
        declared = f.metadata.get("option")
        if declared is None:
            continue
        hint = hints[f.name]
        members = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        kinds = [member for member in members if member is not type(None)]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        found.append(Option(
            name=f.name, kind=kinds[0], optional=len(kinds) < len(members), default=default, help=declared.help,
            flag=declared.flag or "--" + f.name.replace("_", "-"), secret=declared.secret,
            choices=declared.choices, check=declared.check, group=declared.group,
            default_text=declared.default_text,
        ))
    return tuple(found)


OPTIONS: tuple[Option, ...] = _options()
"""Every operator option, in declaration order."""


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """The effective configuration and where each option's value came from."""

    config: Config
    sources: Mapping[str, str]  # option name -> one of SOURCES
    file: Path | None


def _shown(value: object) -> str:
    text = str(value)
    return repr(text[:_SHOWN_VALUE_CHARS] + ("…" if len(text) > _SHOWN_VALUE_CHARS else ""))


def _refuse(opt: Option, where: str, expected: str, value: object) -> ConfigError:
    got = "" if opt.secret else f", not {_shown(value)}"
    return ConfigError(f"{opt.flag} ({where}) must be {expected}{got}")


def _from_text(opt: Option, raw: str, where: str) -> Any:
    """An option's value from a flag or an environment variable."""
    if not raw and opt.optional:
        return None
    try:
        if opt.kind is bool:
            if raw.lower() in _TRUE:
                return True
            if raw.lower() in _FALSE:
                return False
            raise ValueError(raw)
        return opt.kind(raw)
    except ValueError:
        raise _refuse(opt, where, opt.expected(), raw) from None


def _from_toml(opt: Option, value: object, where: str) -> Any:
    """An option's value from the TOML file: a TOML value of the option's own type."""
    if opt.kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if opt.kind is Path and isinstance(value, str):
        return Path(value)
    if type(value) is not opt.kind:
        raise _refuse(opt, where, opt.expected(), value)
    return value


def _checked(opt: Option, value: Any, where: str) -> Any:
    if opt.choices and value not in opt.choices:
        raise _refuse(opt, where, opt.expected(), value)
    if opt.check is not None and value is not None:
        expected = opt.check(value)
        if expected is not None:
            raise _refuse(opt, where, expected, value)
    return value


def read_file(path: Path) -> dict[str, Any]:
    """The TOML configuration file's table; unreadable or not TOML is a ``ConfigError``."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"--config ({path}): cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config ({path}) must be a TOML file: {exc}") from None


def load_config(flags: Mapping[str, object], environ: Mapping[str, str], config_file: Path | None = None, *,
                options: Sequence[Option] = OPTIONS, check_together: bool = True) -> LoadedConfig:
    """The configuration from ``flags`` (option name -> the flag's text, or a bool for on/off options;
    only the flags given), ``environ`` and ``config_file`` (else ``KMSGATE_CONFIG``), over the defaults.

    ``options`` limits what is read to the options a command uses (``kmsgate store migrate``); the
    others keep their defaults and the checks across options are left to ``serve``. Without
    ``check_together`` (``kmsgate config show``) a refused combination of options is loaded as
    given; ``refused_combination`` then names it."""
    path = config_file
    if path is None and environ.get(CONFIG_FILE_ENV):
        path = Path(environ[CONFIG_FILE_ENV])
    table = read_file(path) if path is not None else {}
    by_key = {opt.key: opt for opt in OPTIONS}
    for key in table:
        if key not in by_key:
            close = difflib.get_close_matches(key, by_key, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"{key} (file {path}) is not an option{hint}: expected one of the keys of "
                              f"`kmsgate config show`")
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for opt in options:
        if opt.name in flags:
            raw = flags[opt.name]
            where = "flag"
            value = raw if isinstance(raw, bool) else _from_text(opt, str(raw), where)
        elif environ.get(opt.env):
            where = f"env {opt.env}"
            value = _from_text(opt, environ[opt.env], where)
        elif opt.key in table:
            where = f"file {path}"
            value = _from_toml(opt, table[opt.key], where)
        else:
            sources[opt.name] = "default"
            continue
        values[opt.name] = _checked(opt, value, where)
        sources[opt.name] = where.split(" ")[0]
    config = Config(**values)
    if options is OPTIONS and check_together:
        _check_together(config)
    return LoadedConfig(config, sources, path)


def refused_combination(config: Config) -> str | None:
    """Why ``kmsgate serve`` would refuse this combination of options (one line), or ``None``."""
    try:
        _check_together(config)
    except ConfigError as exc:
        return str(exc)
    return None


def _check_together(config: Config) -> None:
    """Checks that involve more than one option."""
    if config.storage == "s3" and not config.s3_bucket:
        raise ConfigError("--storage s3 needs --s3-bucket")
    if config.s3_port and config.s3_port == config.port:
        raise ConfigError("--s3-port must differ from --port")
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together: give both, or neither")
    if config.tls_client_ca is not None and config.tls_cert is None:
        raise ConfigError("--tls-client-ca needs --tls-cert and --tls-key")
    if not config.tls and not config.insecure_http and not is_loopback(config.host):
        raise ConfigError(f"refusing plain HTTP on the non-loopback address {config.host}: give --tls-cert and "
                          "--tls-key, or --insecure-http to serve it unencrypted")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def show(loaded: LoadedConfig) -> str:
    """``kmsgate config show``: every option as a TOML line with where it came from; secrets masked."""
    lines = [f"# kmsgate configuration; file: {loaded.file or 'none'}"]
    for opt in OPTIONS:
        value = getattr(loaded.config, opt.name)
        source = loaded.sources[opt.name]
        if source == "env":
            source = f"env {opt.env}"
        if value is None:
            lines.append(f"# {opt.key} is unset  # {source}")
            continue
        if opt.secret:
            text = '"********"'
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, float)):
            text = repr(value)
        else:
            text = '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
        lines.append(f"{opt.key} = {text}  # {source}")
    return "\n".join(lines) + "\n"


def readme_table() -> str:
    """The README's table of options (a test checks that README.md holds it as generated here)."""
    rows = ["| option | environment | default | meaning |", "| --- | --- | --- | --- |"]
    for opt in OPTIONS:
        meaning = opt.help + ("; secret: `kmsgate config show` masks it" if opt.secret else "")
        cells = (f"`{opt.flag}`", f"`{opt.env}`", opt.describe_default(), meaning)
        rows.append("| " + " | ".join(cell.replace("|", "/").replace("<", "\\<") for cell in cells) + " |")
    return "\n".join(rows)
