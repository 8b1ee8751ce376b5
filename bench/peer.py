"""The peer: moto's server mode on loopback, another implementation of the AWS KMS API.

moto dispatches on the request, not the path: an unsigned ``POST /`` is answered as S3
(HTTP 200 with ListBuckets XML), so requests to it are always SigV4-signed with dummy
credentials and each preflight reply is checked to be a KMS reply (``bench.kmsreq``).
moto closes the connection after every response; the load generator reconnects.
"""

from __future__ import annotations

import os
import shutil
import sys

from bench.kmsreq import Credentials
from bench.procs import ServerProcess, free_port

PEER_CREDENTIALS = Credentials("AKIDMOTOPEER00000000", "moto-peer-dummy-secret-not-a-real-credential")


def moto_server_argv(port: int) -> list[str] | None:
    """The command that starts moto's server, or ``None`` when moto is not installed."""
    exe = os.path.join(os.path.dirname(sys.executable), "moto_server")
    if not os.path.exists(exe):
        found = shutil.which("moto_server")
        if found is None:
            return None
        exe = found
    return [exe, "-H", "127.0.0.1", "-p", str(port)]


def start_moto(port: int | None = None) -> ServerProcess:
    """Start moto's server on 127.0.0.1 and wait until it listens."""
    port = port or free_port()
    argv = moto_server_argv(port)
    if argv is None:
        raise RuntimeError("moto server not installed (pip install 'moto[server]')")
    env = dict(os.environ)
    env.update(AWS_DEFAULT_REGION="us-east-1", MOTO_ALLOW_NONEXISTENT_REGION="false")
    server = ServerProcess(argv, port=port, env=env)
    server.wait_ready()
    return server
