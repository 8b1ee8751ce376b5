"""TLS for every listener: the server's SSL context from PEM files, and its reload on SIGHUP.

The context is the standard library's secure server default (``ssl.create_default_context(
Purpose.CLIENT_AUTH)``: no compression, modern cipher suites) with TLS 1.2 as the minimum. With a
client CA, every client must present a certificate that CA signed (``CERT_REQUIRED``).

Reload: ``reload`` loads the new pair into a fresh context first, so a missing, unreadable,
mismatched or too widely readable pair leaves the serving context untouched; then it loads the pair
into the serving context itself. OpenSSL copies the certificate and key into each connection when
the connection is created, so connections already open keep theirs and every later handshake gets
the new pair. The event loop runs the reload between handshakes (one thread), so none sees half of it.
"""

from __future__ import annotations

import logging
import os
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path

from kmsgate.config import Config

log = logging.getLogger(__name__)

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2


class TlsError(Exception):
    """A certificate, key or CA file that cannot serve; ``str()`` is one line for the operator."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    cert: Path
    key: Path
    client_ca: Path | None = None


def tls_files(config: Config) -> TlsFiles | None:
    """The PEM files ``config`` names, or ``None`` for plain HTTP."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    return TlsFiles(config.tls_cert, config.tls_key, config.tls_client_ca)


def check_key_permissions(path: Path) -> None:
    """Refuse a private key that group or others may read (as the root key is refused)."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise TlsError(f"--tls-key {path} cannot be read: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TlsError(f"--tls-key {path} is readable by group or others (mode {stat.S_IMODE(mode):04o}); "
                       "make it 0600 or 0400")


def _reason(exc: OSError) -> str:
    return exc.strerror or getattr(exc, "reason", None) or type(exc).__name__


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """A server context serving ``files``' certificate chain and key (and requiring client
    certificates when they name a client CA)."""
    check_key_permissions(files.key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = MINIMUM_VERSION
    _load_pair(context, files)
    if files.client_ca is not None:
        try:
            context.load_verify_locations(cafile=os.fspath(files.client_ca))
        except (OSError, ssl.SSLError) as exc:
            raise TlsError(f"--tls-client-ca {files.client_ca} cannot be loaded: {_reason(exc)}") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _load_pair(context: ssl.SSLContext, files: TlsFiles) -> None:
    try:
        context.load_cert_chain(os.fspath(files.cert), os.fspath(files.key))
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"--tls-cert {files.cert} with --tls-key {files.key} cannot be loaded: {_reason(exc)}"
                       ) from None


def reload(context: ssl.SSLContext, files: TlsFiles) -> bool:
    """Serve the pair now in ``files`` on later handshakes; on failure log why and keep the old pair."""
    try:
        server_context(files)
        _load_pair(context, files)
    except TlsError as exc:
        log.error("TLS certificate not reloaded: %s", exc)
        return False
    log.info("TLS certificate reloaded", extra={"cert": str(files.cert), "pid": os.getpid()})
    return True
