"""The ``kmsgate`` command line: ``kmsgate serve`` and friends.

Every ``serve`` option can also be set with a ``KMSGATE_*`` environment variable; a flag given
on the command line wins over the environment, which wins over the default.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar

from kmsgate.admin_cli import add_keys_command, run_keys_command
from kmsgate.allocator import tune_allocator
from kmsgate.auth.audit import FSYNC_POLICIES
from kmsgate.auth.identities import ROOT_TOKEN_FILE_NAME, IdentitiesError, load_directory
from kmsgate.bootstrap import ensure_default_key
from kmsgate.config import Config
from kmsgate.gateway import workers
from kmsgate.gateway.connections import ConnectionLimits
from kmsgate.kms.rootkey_source import load_root_key
from kmsgate.kms.rootkey import RootKey, RootKeyError
from kmsgate.kms.stores import KeyStoreUrlError, open_store, parse_key_store
from kmsgate.logs import configure_logging
from kmsgate.store_cli import add_store_command, run_store_command
from kmsgate.web.app import create_app

log = logging.getLogger("kmsgate")

N = TypeVar("N", int, float)
LOG_LEVELS = ("debug", "info", "warning", "error")
STORAGES = ("file", "s3")
BUCKET_NAME_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
HOST_LABEL_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def _env(environ: Mapping[str, str], name: str, default: str | None) -> str | None:
    return environ.get(f"KMSGATE_{name}", default)


def _env_number(environ: Mapping[str, str], name: str, kind: Callable[[str], N], default: N) -> N:
    """``KMSGATE_<name>`` read as ``kind`` (``int`` or ``float``), or ``default`` when unset or empty;
    a value that is not a number stops the command with a message naming the variable."""
    raw = environ.get(f"KMSGATE_{name}", "")
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise SystemExit(f"kmsgate: KMSGATE_{name} must be {what}, not {raw[:40]!r}") from None


def _env_choice(environ: Mapping[str, str], name: str, choices: Sequence[str], default: str) -> str:
    """``KMSGATE_<name>`` if it is one of ``choices``, ``default`` when unset or empty; anything
    else stops the command (argparse checks only the choices given as flags)."""
    raw = environ.get(f"KMSGATE_{name}", "")
    if not raw:
        return default
    if raw not in choices:
        raise SystemExit(f"kmsgate: KMSGATE_{name} must be one of {', '.join(choices)}, not {raw[:40]!r}")
    return raw


def _flag(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(f"KMSGATE_{name}", "").lower() in ("1", "true", "yes", "on")


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kmsgate",
        description="kmsgate: a key management service speaking the AWS KMS API, and an envelope-encryption gateway.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve",
        help="run the KMS API (POST /) and the gateway on one port",
        description="Run kmsgate. Every option can also be given as the KMSGATE_<NAME> environment variable "
        "shown in brackets; a flag wins over the environment.",
    )
    defaults = Config()
    serve.add_argument("--host", default=_env(environ, "HOST", defaults.host),
                       help="address to listen on [KMSGATE_HOST] (default: %(default)s)")
    serve.add_argument("--port", type=int, default=_env_number(environ, "PORT", int, defaults.port),
                       help="TCP port [KMSGATE_PORT] (default: %(default)s)")
    serve.add_argument("--s3-port", type=int, default=_env_number(environ, "S3_PORT", int, defaults.s3_port),
                       help="TCP port of the S3 API, on the same host; 0 turns it off [KMSGATE_S3_PORT] "
                       "(default: %(default)s)")
    serve.add_argument("--s3-domain", default=_env(environ, "S3_DOMAIN", ""),
                       help="host names (comma-separated) under which <bucket>.<name> addresses a bucket "
                       "(virtual-hosted style), besides localhost and --host when it is a name [KMSGATE_S3_DOMAIN]")
    serve.add_argument("--data-dir", type=Path, default=Path(_env(environ, "DATA_DIR", str(defaults.data_dir)) or "."),
                       help="directory for the key store, root key and objects [KMSGATE_DATA_DIR] (default: %(default)s)")
    serve.add_argument("--region", default=_env(environ, "REGION", defaults.region),
                       help="region used in key and alias ARNs [KMSGATE_REGION] (default: %(default)s)")
    serve.add_argument("--account-id", default=_env(environ, "ACCOUNT_ID", defaults.account_id),
                       help="account id used in ARNs [KMSGATE_ACCOUNT_ID] (default: %(default)s)")
    root_key_file = _env(environ, "ROOT_KEY_FILE", None)
    serve.add_argument("--root-key-file", type=Path, default=Path(root_key_file) if root_key_file else None,
                       help="file holding the base64 root key [KMSGATE_ROOT_KEY_FILE]; the KMSGATE_ROOT_KEY variable "
                       "(base64) takes precedence; without either, <data-dir>/root.key is created (mode 0600)")
    serve.add_argument("--key-store", default=_env(environ, "KEY_STORE", None) or None,
                       help="where keys, aliases, policies and grants are kept: sqlite:///path, or "
                       "postgresql://user:password@host:port/db (TLS parameters as libpq takes them) for several "
                       "nodes sharing one store [KMSGATE_KEY_STORE] (default: sqlite in <data-dir>/kms.sqlite3)")
    serve.add_argument("--log-level", default=_env_choice(environ, "LOG_LEVEL", LOG_LEVELS, defaults.log_level),
                       choices=LOG_LEVELS, help="[KMSGATE_LOG_LEVEL] (default: %(default)s)")
    serve.add_argument("--insecure-no-auth", action="store_true", default=_flag(environ, "INSECURE_NO_AUTH"),
                       help="accept unauthenticated requests as the account root; for local experiments only, "
                       "refused on a non-loopback address [KMSGATE_INSECURE_NO_AUTH]")
    identities = _env(environ, "IDENTITIES", None)
    serve.add_argument("--identities", type=Path, default=Path(identities) if identities else None,
                       help="TOML file declaring principals, their access keys and bearer tokens [KMSGATE_IDENTITIES]")
    serve.add_argument("--audit-fsync", choices=FSYNC_POLICIES,
                       default=_env_choice(environ, "AUDIT_FSYNC", FSYNC_POLICIES, defaults.audit_fsync),
                       help="audit log durability: 'batch' fsyncs each group of lines as it is written, "
                       "'none' leaves it to the OS [KMSGATE_AUDIT_FSYNC] (default: %(default)s)")
    serve.add_argument("--audit-stdout", action="store_true", default=_flag(environ, "AUDIT_STDOUT"),
                       help="also write every audit line to stdout [KMSGATE_AUDIT_STDOUT]")
    serve.add_argument("--workers", type=int,
                       default=_env_number(environ, "WORKERS", int, os.cpu_count() or 1),
                       help="worker processes sharing the port (SO_REUSEPORT) under a supervisor that restarts "
                       "a worker that dies; 0 serves in the supervisor's own process [KMSGATE_WORKERS] "
                       "(default: the CPU count, %(default)s)")
    serve.add_argument("--drain-timeout", type=float,
                       default=_env_number(environ, "DRAIN_TIMEOUT", float, defaults.drain_timeout_seconds),
                       help="seconds SIGTERM waits for in-flight requests before exiting [KMSGATE_DRAIN_TIMEOUT] "
                       "(default: %(default)s)")
    serve.add_argument("--liveness-timeout", type=float,
                       default=_env_number(environ, "LIVENESS_TIMEOUT", float, defaults.liveness_timeout_seconds),
                       help="seconds a worker's event loop may go without a heartbeat before the supervisor kills "
                       "and replaces the worker; 0 turns this off [KMSGATE_LIVENESS_TIMEOUT] (default: %(default)s)")
    connections = serve.add_argument_group("connections (per worker)")
    connections.add_argument("--header-timeout", type=float,
                             default=_env_number(environ, "HEADER_TIMEOUT", float, defaults.header_timeout_seconds),
                             help="seconds from a request's first byte to the end of its headers; later is 408 and "
                             "the connection is closed [KMSGATE_HEADER_TIMEOUT] (default: %(default)s)")
    connections.add_argument("--body-read-timeout", type=float,
                             default=_env_number(environ, "BODY_READ_TIMEOUT", float,
                                                 defaults.body_read_timeout_seconds),
                             help="seconds a request body may stall (no bytes while kmsgate waits for them); then "
                             "the request is 408 [KMSGATE_BODY_READ_TIMEOUT] (default: %(default)s)")
    connections.add_argument("--idle-timeout", type=float,
                             default=_env_number(environ, "IDLE_TIMEOUT", float, defaults.idle_timeout_seconds),
                             help="seconds a connection may stay open without a request [KMSGATE_IDLE_TIMEOUT] "
                             "(default: %(default)s)")
    connections.add_argument("--max-connections", type=int,
                             default=_env_number(environ, "MAX_CONNECTIONS", int, defaults.max_connections),
                             help="open connections per worker; one more is answered 503 and closed at once "
                             "[KMSGATE_MAX_CONNECTIONS] (default: %(default)s)")
    gateway = serve.add_argument_group("gateway")
    gateway.add_argument("--multipart-max-age", type=float,
                         default=_env_number(environ, "MULTIPART_MAX_AGE", float, defaults.multipart_max_age_seconds),
                         help="seconds after which an unfinished multipart upload is aborted and its parts removed, "
                         "checked by each worker [KMSGATE_MULTIPART_MAX_AGE] (default: %(default)s = 7 days)")
    gateway.add_argument("--max-object-size", type=int,
                         default=_env_number(environ, "MAX_OBJECT_SIZE", int, defaults.max_object_size),
                         help="largest body accepted by PUT /v1/objects and /v1/encrypt, in bytes; larger is 413 "
                         "[KMSGATE_MAX_OBJECT_SIZE] (default: %(default)s = 5 GiB)")
    gateway.add_argument("--max-in-flight", type=int,
                         default=_env_number(environ, "MAX_IN_FLIGHT", int, defaults.max_in_flight),
                         help="gateway requests handled at once per worker; more are answered 503 with Retry-After "
                         "[KMSGATE_MAX_IN_FLIGHT] (default: %(default)s)")
    gateway.add_argument("--default-bucket", default=_env(environ, "DEFAULT_BUCKET", defaults.default_bucket),
                         help="bucket name of the /v1/objects API: objects are arn:aws:s3:::<bucket>/<key> in "
                         "identity policies and in each object's encryption context [KMSGATE_DEFAULT_BUCKET] "
                         "(default: %(default)s)")
    gateway.add_argument("--storage", choices=STORAGES,
                         default=_env_choice(environ, "STORAGE", STORAGES, defaults.storage),
                         help="where objects are stored: 'file' under <data-dir>/objects, or an S3-compatible "
                         "bucket [KMSGATE_STORAGE] (default: %(default)s)")
    gateway.add_argument("--s3-bucket", default=_env(environ, "S3_BUCKET", None),
                         help="bucket for --storage s3 [KMSGATE_S3_BUCKET]")
    gateway.add_argument("--s3-prefix", default=_env(environ, "S3_PREFIX", ""),
                         help="key prefix inside the bucket [KMSGATE_S3_PREFIX]")
    gateway.add_argument("--s3-endpoint-url", default=_env(environ, "S3_ENDPOINT_URL", None),
                         help="S3-compatible endpoint; credentials come from the standard AWS chain "
                         "[KMSGATE_S3_ENDPOINT_URL]")
    gateway.add_argument("--s3-region", default=_env(environ, "S3_REGION", None),
                         help="region of the bucket [KMSGATE_S3_REGION]")
    gateway.add_argument("--kms-endpoint", default=_env(environ, "KMS_ENDPOINT", None),
                         help="make the gateway a client of this AWS-KMS-compatible endpoint (another kmsgate, or "
                         "AWS KMS) instead of the embedded KMS; credentials from the standard AWS chain "
                         "[KMSGATE_KMS_ENDPOINT]")
    gateway.add_argument("--kms-region", default=_env(environ, "KMS_REGION", None),
                         help="region for --kms-endpoint (default: --region) [KMSGATE_KMS_REGION]")
    gateway.add_argument("--kms-timeout", type=float,
                         default=_env_number(environ, "KMS_TIMEOUT", float, defaults.kms_timeout_seconds),
                         help="seconds a KMS call may take before the request fails with 503 [KMSGATE_KMS_TIMEOUT] "
                         "(default: %(default)s)")
    gateway.add_argument("--cache-max-age", type=float,
                         default=_env_number(environ, "CACHE_MAX_AGE", float, defaults.cache_max_age_seconds),
                         help="seconds a cached data key may encrypt new messages [KMSGATE_CACHE_MAX_AGE] "
                         "(default: %(default)s)")
    gateway.add_argument("--cache-max-messages", type=int,
                         default=_env_number(environ, "CACHE_MAX_MESSAGES", int, defaults.cache_max_messages),
                         help="messages one cached data key may encrypt; 1 turns reuse off (one KMS call per "
                         "object) [KMSGATE_CACHE_MAX_MESSAGES] (default: %(default)s)")
    gateway.add_argument("--cache-max-bytes", type=int,
                         default=_env_number(environ, "CACHE_MAX_BYTES", int, defaults.cache_max_bytes),
                         help="plaintext bytes one cached data key may encrypt [KMSGATE_CACHE_MAX_BYTES] "
                         "(default: %(default)s = 64 GiB)")
    gateway.add_argument("--cache-capacity", type=int,
                         default=_env_number(environ, "CACHE_CAPACITY", int, defaults.cache_capacity),
                         help="data keys held at once (least recently used leave first) [KMSGATE_CACHE_CAPACITY] "
                         "(default: %(default)s)")
    add_keys_command(commands, environ)
    add_store_command(commands, environ)
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    if not args.account_id.isdigit() or len(args.account_id) != 12:
        raise SystemExit("kmsgate: --account-id must be 12 digits")
    if not BUCKET_NAME_RE.fullmatch(args.default_bucket or ""):
        raise SystemExit("kmsgate: --default-bucket must be an S3 bucket name (3-63 characters of a-z, 0-9, '.' "
                         "and '-', starting and ending with a letter or digit)")
    if args.storage == "s3" and not args.s3_bucket:
        raise SystemExit("kmsgate: --storage s3 needs --s3-bucket")
    for name in ("max_object_size", "max_in_flight", "cache_max_messages", "cache_max_bytes", "cache_capacity",
                 "max_connections"):
        if getattr(args, name) < 1:
            raise SystemExit(f"kmsgate: --{name.replace('_', '-')} must be at least 1")
    for name in ("cache_max_age", "multipart_max_age", "kms_timeout", "header_timeout", "body_read_timeout", "idle_timeout"):
        if getattr(args, name) <= 0:
            raise SystemExit(f"kmsgate: --{name.replace('_', '-')} must be positive")
    if not 0 <= args.s3_port <= 65535:
        raise SystemExit("kmsgate: --s3-port must be a port number, or 0 (off)")
    if args.s3_port and args.s3_port == args.port:
        raise SystemExit("kmsgate: --s3-port must differ from --port")
    s3_domains = tuple(name.strip().lower().rstrip(".") for name in (args.s3_domain or "").split(",") if name.strip())
    for name in s3_domains:
        if not _is_host_name(name):
            raise SystemExit(f"kmsgate: --s3-domain: {name[:64]!r} is not a host name")
    if args.liveness_timeout < 0:
        raise SystemExit("kmsgate: --liveness-timeout must be 0 (off) or positive")
    try:
        parse_key_store(args.key_store, args.data_dir)
    except KeyStoreUrlError as exc:
        raise SystemExit(f"kmsgate: --key-store: {exc}") from None
    return Config(
        host=args.host,
        port=args.port,
        s3_port=args.s3_port,
        s3_domains=s3_domains,
        data_dir=args.data_dir,
        region=args.region,
        account_id=args.account_id,
        root_key_file=args.root_key_file,
        key_store=args.key_store,
        log_level=args.log_level,
        insecure_no_auth=args.insecure_no_auth,
        identities_file=args.identities,
        audit_fsync=args.audit_fsync,
        audit_stdout=args.audit_stdout,
        workers=args.workers,
        drain_timeout_seconds=args.drain_timeout,
        default_bucket=args.default_bucket,
        liveness_timeout_seconds=args.liveness_timeout,
        header_timeout_seconds=args.header_timeout,
        body_read_timeout_seconds=args.body_read_timeout,
        idle_timeout_seconds=args.idle_timeout,
        max_connections=args.max_connections,
        max_object_size=args.max_object_size,
        max_in_flight=args.max_in_flight,
        multipart_max_age_seconds=args.multipart_max_age,
        storage=args.storage,
        s3_bucket=args.s3_bucket,
        s3_prefix=args.s3_prefix,
        s3_endpoint_url=args.s3_endpoint_url,
        s3_region=args.s3_region,
        kms_endpoint=args.kms_endpoint,
        kms_region=args.kms_region,
        kms_timeout_seconds=args.kms_timeout,
        cache_max_age_seconds=args.cache_max_age,
        cache_max_messages=args.cache_max_messages,
        cache_max_bytes=args.cache_max_bytes,
        cache_capacity=args.cache_capacity,
    )


def _is_host_name(name: str) -> bool:
    """A DNS name (labels of letters, digits and inner hyphens), not an IP address."""
    try:
        ipaddress.ip_address(name)
        return False
    except ValueError:
        pass
    return len(name) <= 253 and all(HOST_LABEL_RE.fullmatch(label) for label in name.split("."))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_key_store(config: Config, root_key: RootKey) -> None:
    location = parse_key_store(config.key_store, config.data_dir).describe()
    try:
        open_store(config.key_store, config.data_dir, root_key).close()
    except RootKeyError as exc:
        raise SystemExit(f"kmsgate: refusing to start: {exc} ({location})") from None
    except Exception as exc:  # the database's own errors, summarised on one line without the URL's secrets
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SystemExit(f"kmsgate: cannot open the key store {location}: {first}") from None


def serve(config: Config) -> int:
    configure_logging(config.log_level)
    tuned = tune_allocator(os.environ)  # inherited by the workers forked below
    if config.workers < 0:
        raise SystemExit("kmsgate: --workers must be 0 or more")
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Created once here, before any worker starts, so that workers never race to create it.
    _root_key, source = load_root_key(
        env_value=os.environ.get("KMSGATE_ROOT_KEY"), path=config.root_key_file, data_dir=config.data_dir
    )
    # Likewise the key store's schema (migrations) and generated root credentials; a key store
    # that cannot be reached, or that another root key created, stops the start here.
    _check_key_store(config, _root_key)
    if config.insecure_no_auth:
        if not _is_loopback(config.host):
            raise SystemExit("kmsgate: --insecure-no-auth is refused on a non-loopback address")
        log.warning(
            "AUTHENTICATION IS OFF (--insecure-no-auth): every request acts as the account root. "
            "Use this for local experiments only."
        )
    try:
        _directory, root = load_directory(
            config.account_id, os.environ, config.data_dir, config.identities_file, config.region
        )
    except IdentitiesError as exc:
        raise SystemExit(f"kmsgate: {exc}") from None
    if config.kms_endpoint is None:
        default_key = asyncio.run(ensure_default_key(config))
        log.info("default gateway key", extra={"alias": config.default_key_alias, "key_id": default_key})
    if not os.environ.get("KMSGATE_ROOT_TOKEN"):
        log.info(
            "gateway root token",
            extra={"path": str(config.data_dir / ROOT_TOKEN_FILE_NAME),
                   "hint": f"curl -H \"Authorization: Bearer $(cat {config.data_dir / ROOT_TOKEN_FILE_NAME})\" "
                           f"http://{config.host}:{config.port}/v1/objects/hello -T file"},
        )
    if root.source == "generated":
        log.info(
            "generated root credentials",
            extra={"path": str(root.path), "profile": "kmsgate",
                   "hint": f"AWS_SHARED_CREDENTIALS_FILE={root.path} aws --profile kmsgate "
                           f"--endpoint-url http://{config.host}:{config.port} kms list-keys"},
        )
    log.info(
        "starting",
        extra={
            "host": config.host,
            "port": config.port,
            "s3_port": config.s3_port or None,
            "data_dir": str(config.data_dir),
            "workers": config.workers,
            "root_key_source": source,
            "allocator_tuned": tuned,
        },
    )
    return workers.serve(
        partial(create_app, config),
        host=config.host,
        port=config.port,
        workers=config.workers,
        drain_timeout=config.drain_timeout_seconds,
        liveness_timeout=config.liveness_timeout_seconds,
        listeners={"s3": config.s3_port} if config.s3_port else None,
        limits=ConnectionLimits(
            header_timeout_seconds=config.header_timeout_seconds,
            body_read_timeout_seconds=config.body_read_timeout_seconds,
            idle_timeout_seconds=config.idle_timeout_seconds,
            max_connections=config.max_connections,
        ),
    )


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> None:
    env = os.environ if environ is None else environ
    args = build_parser(env).parse_args(argv)
    if args.command == "serve":
        sys.exit(serve(config_from_args(args)))
    elif args.command == "keys":
        sys.exit(run_keys_command(args))
    elif args.command == "store":
        sys.exit(run_store_command(args))
    else:  # pragma: no cover - argparse rejects unknown commands
        sys.exit(2)
