"""First-start set-up done once by the supervisor, before any worker exists."""

from __future__ import annotations

import os

from kmsgate.core.errors import AlreadyExistsError, NotFoundError
from kmsgate.core.principal import account_root
from kmsgate.config import Config
from kmsgate.kms.rootkey_source import load_root_key
from kmsgate.kms.service import open_service


async def ensure_default_key(config: Config) -> str:
    """Create the gateway's default key and its alias unless the alias exists; return the key id."""
    root_key, _ = load_root_key(
        env_value=os.environ.get("KMSGATE_ROOT_KEY"), path=config.root_key_file, data_dir=config.data_dir
    )
    service = open_service(
        config.data_dir, root_key, region=config.region, account_id=config.account_id, key_store=config.key_store
    )
    caller = account_root(config.account_id)
    try:
        try:
            described = await service.describe_key(caller=caller, key_id=config.default_key_alias)
            return str(described["key_metadata"]["key_id"])
        except NotFoundError:
            created = await service.create_key(
                caller=caller, description="kmsgate gateway default key (created at first start)"
            )
            key_id = str(created["key_metadata"]["key_id"])
            try:
                await service.create_alias(caller=caller, alias_name=config.default_key_alias, target_key_id=key_id)
            except AlreadyExistsError:
                # Another node sharing the key store created it first: use its key, retire ours.
                await service.schedule_key_deletion(caller=caller, key_id=key_id, pending_window_in_days=7)
                described = await service.describe_key(caller=caller, key_id=config.default_key_alias)
                return str(described["key_metadata"]["key_id"])
            return key_id
    finally:
        service.close()
