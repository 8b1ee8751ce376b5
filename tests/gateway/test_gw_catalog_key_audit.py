"""The catalog key's KMS calls are in the audit log, as the gateway's own principal, under its purpose.

A real ``kmsgate serve`` with its S3 API: the first PUT makes the catalog key (``GenerateDataKey``);
after a restart the first listing unwraps it (``Decrypt``). The audit log is read once the server
has stopped, so every line it queued is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kmsgate.config import DEFAULTS
from kmsgate.core.principal import account_root
from kmsgate.gateway.catalog_key import PURPOSE_CONTEXT
from kmsgate.web.app import AUDIT_FILENAME
from tests.conftest import free_port, start_server
from tests.s3front.conftest import s3_client


def audit_entries(data_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (data_dir / AUDIT_FILENAME).read_text().splitlines() if line.strip()]


def test_the_catalog_keys_generate_data_key_and_decrypt_are_audited_as_the_gateway_with_the_purpose_context(
        tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start_server(data_dir, "--s3-port", str(free_port()))
    try:
        s3_client(server).put_object(Bucket=DEFAULTS.default_bucket, Key="first", Body=b"sealed etag")
        server.stop()
        server.start()  # a new process: the catalog key is unwrapped from storage on first need
        listed = s3_client(server).list_objects_v2(Bucket=DEFAULTS.default_bucket)
        assert [item["Key"] for item in listed["Contents"]] == ["first"]
    finally:
        server.stop()
    gateway_arn = account_root(server.account_id).arn
    catalog = [(entry["operation"], entry["principal_arn"], entry["outcome"])
               for entry in audit_entries(data_dir) if entry.get("encryption_context") == PURPOSE_CONTEXT]
    assert catalog == [("GenerateDataKey", gateway_arn, "success"), ("Decrypt", gateway_arn, "success")]
