"""A multi-process gateway for the process tests: in-process KMS, file storage, N workers.

Usage: python gateway_app.py DATA_DIR PORT_FILE WORKERS DRAIN_TIMEOUT
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from aiohttp import web
from gateway_harness import TrustAsRoot

from kmsgate.core.principal import account_root
from kmsgate.envelope.kms_client import InProcessKmsClient
from kmsgate.gateway.metrics import GatewayMetrics
from kmsgate.gateway.routes import setup_gateway
from kmsgate.gateway.service import DEFAULT_KEY_ALIAS, Gateway, GatewaySettings
from kmsgate.gateway.storage.file import FileStorage
from kmsgate.gateway.workers import metrics_dir_from_env, serve
from kmsgate.kms.rootkey import RootKey
from kmsgate.kms.service import open_service

ACCOUNT_ID = "111122223333"


def main() -> int:
    data_dir, port_file, workers, drain = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    secret = os.urandom(32)

    async def create_default_key() -> None:
        service = open_service(data_dir / "kms", RootKey(secret), region="us-east-1", account_id=ACCOUNT_ID)
        caller = account_root(ACCOUNT_ID)
        arn = (await service.create_key(caller=caller))["key_metadata"]["arn"]
        await service.create_alias(caller=caller, alias_name=DEFAULT_KEY_ALIAS, target_key_id=arn)
        service.close()

    asyncio.run(create_default_key())

    def build() -> web.Application:
        app = web.Application()

        async def factory(app: web.Application) -> Gateway:
            service = open_service(data_dir / "kms", RootKey(secret), region="us-east-1", account_id=ACCOUNT_ID)

            async def close_service() -> None:
                service.close()

            return Gateway(storage=FileStorage(data_dir / "objects"),
                           kms=InProcessKmsClient(service, account_root(ACCOUNT_ID)),
                           metrics=GatewayMetrics(metrics_dir_from_env()),
                           settings=GatewaySettings(frame_length=4096), on_close=close_service,
                           authenticator=TrustAsRoot())

        setup_gateway(app, factory)
        return app

    return serve(build, host="127.0.0.1", port=0, workers=workers, drain_timeout=drain, port_file=port_file)


if __name__ == "__main__":
    from kmsgate.logs import configure_logging

    configure_logging("info")
    sys.exit(main())
