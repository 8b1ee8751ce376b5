"""The ``kmsgate`` command line: ``kmsgate serve``, ``kmsgate config show`` and friends.

The flags of ``serve`` come from the options declared on ``kmsgate.config.Config``; each can also be
set with its ``KMSGATE_*`` environment variable or in the ``--config`` TOML file (flag > environment
> file > default). A bad value stops the command with one line and exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import sys
from collections.abc import Mapping, Sequence
from functools import partial

from kmsgate.admin_cli import add_keys_command, run_keys_command
from kmsgate.allocator import tune_allocator
from kmsgate.auth.identities import ROOT_TOKEN_FILE_NAME, IdentitiesError, load_directory
from kmsgate.bootstrap import ensure_default_key
from kmsgate.config import (
    Config, ConfigError, LoadedConfig, is_loopback, load_config, refused_combination, show,
)
from kmsgate.config_flags import add_config_flag, add_option_flags, given_flags
from kmsgate.gateway import workers
from kmsgate.gateway.tls import TlsError, server_context, tls_files
from kmsgate.web.connections import ConnectionLimits
from kmsgate.kms.rootkey_source import load_root_key
from kmsgate.kms.rootkey import RootKey, RootKeyError
from kmsgate.kms.stores import open_store, parse_key_store
from kmsgate.logs import configure_logging
from kmsgate.rootkey_cli import add_root_key_command, run_root_key_command
from kmsgate.store_cli import add_store_command, run_store_command
from kmsgate.web.app import create_app

log = logging.getLogger("kmsgate")


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
        "shown in brackets, or in the --config file; a flag wins over the environment, which wins over the file.",
    )
    add_config_flag(serve)
    add_option_flags(serve)
    config = commands.add_parser("config", help="show the effective configuration")
    config_actions = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    config_show = config_actions.add_parser(
        "show", help="print every option's effective value and where it came from (default, file, env, flag), "
        "secrets masked; takes the flags of `kmsgate serve`")
    add_config_flag(config_show)
    add_option_flags(config_show)
    add_keys_command(commands, environ)
    add_store_command(commands)
    add_root_key_command(commands)
    return parser


def load_from_args(args: argparse.Namespace, environ: Mapping[str, str], *,
                   check_together: bool = True) -> LoadedConfig:
    """The configuration of ``serve`` or ``config show``: the flags given, over ``environ``, the file and the defaults."""
    return load_config(given_flags(args), environ, args.config, check_together=check_together)


def config_show(loaded: LoadedConfig) -> int:
    """``kmsgate config show``: the effective configuration on stdout; if ``serve`` would refuse the
    combination, then its one-line reason on stderr and exit code 2 (as ``serve`` exits)."""
    sys.stdout.write(show(loaded))
    refusal = refused_combination(loaded.config)
    if refusal is None:
        return 0
    sys.stdout.flush()
    print(f"kmsgate: {refusal}", file=sys.stderr)
    return 2


def _tls_context_check(config: Config) -> None:
    """Load the TLS pair once before any worker starts, so that a bad one stops the start on one line."""
    files = tls_files(config)
    if files is None:
        return
    try:
        server_context(files)
    except TlsError as exc:
        raise ConfigError(str(exc)) from None


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
    # No core dumps, from the supervisor and the workers it forks: a dump would write the root key,
    # key material and credentials held in memory to disk.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    configure_logging(config.log_level)
    tuned = tune_allocator(os.environ)  # inherited by the workers forked below
    _tls_context_check(config)
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise SystemExit(f"kmsgate: cannot create the data directory {config.data_dir}: {exc.strerror}") from None
    # Created once here, before any worker starts, so that workers never race to create it.
    try:
        _root_key, source = load_root_key(
            env_value=os.environ.get("KMSGATE_ROOT_KEY"), path=config.root_key_file, data_dir=config.data_dir
        )
    except RootKeyError as exc:
        raise SystemExit(f"kmsgate: refusing to start: {exc}") from None
    # Likewise the key store's schema (migrations) and generated root credentials; a key store
    # that cannot be reached, or that another root key created, stops the start here.
    _check_key_store(config, _root_key)
    if config.insecure_no_auth:
        if not is_loopback(config.host):
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
                           f"{config.scheme}://{config.host}:{config.port}/v1/objects/hello -T file"},
        )
    if root.source == "generated":
        log.info(
            "generated root credentials",
            extra={"path": str(root.path), "profile": "kmsgate",
                   "hint": f"AWS_SHARED_CREDENTIALS_FILE={root.path} aws --profile kmsgate "
                           f"--endpoint-url {config.scheme}://{config.host}:{config.port} kms list-keys"},
        )
    log.info(
        "starting",
        extra={
            "host": config.host,
            "port": config.port,
            "s3_port": config.s3_port or None,
            "tls": config.tls,
            "client_certificates": config.tls_client_ca is not None,
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
        tls=tls_files(config),
        limits=ConnectionLimits(
            header_timeout_seconds=config.header_timeout_seconds,
            body_read_timeout_seconds=config.body_read_timeout_seconds,
            send_timeout_seconds=config.send_timeout_seconds,
            idle_timeout_seconds=config.idle_timeout_seconds,
            max_connections=config.max_connections,
        ),
    )


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> None:
    env = os.environ if environ is None else environ
    args = build_parser(env).parse_args(argv)
    if args.command in ("serve", "config"):
        try:
            if args.command == "config":
                sys.exit(config_show(load_from_args(args, env, check_together=False)))
            code = serve(load_from_args(args, env).config)
        except ConfigError as exc:
            print(f"kmsgate: {exc}", file=sys.stderr)
            sys.exit(2)
        sys.exit(code)
    elif args.command == "keys":
        sys.exit(run_keys_command(args))
    elif args.command == "store":
        sys.exit(run_store_command(args, environ=env))
    elif args.command == "root-key":
        sys.exit(run_root_key_command(args, env))
    else:  # pragma: no cover - argparse rejects unknown commands
        sys.exit(2)
