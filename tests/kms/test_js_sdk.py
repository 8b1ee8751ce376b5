"""The AWS SDK for JavaScript v3 (``@aws-sdk/client-kms``) against a real kmsgate: Sign and Verify.

Needs ``node`` and the package installed under ``.venv/js`` (``make tools``); skips with one line
saying so when they are absent. The signature the JS client got is also checked with
pyca/cryptography against GetPublicKey's public key.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parents[2]
JS_MODULES = ROOT / ".venv" / "js" / "node_modules"
SCRIPT = Path(__file__).parent / "js" / "sign_verify.mjs"
NODE = shutil.which("node")


def test_the_js_sdk_signs_and_verifies_through_kmsgate(kmsgate_server: Any) -> None:
    if NODE is None or not (JS_MODULES / "@aws-sdk" / "client-kms").is_dir():
        pytest.skip("node or @aws-sdk/client-kms is not installed (make tools installs them under .venv/js)")
    kms = kmsgate_server.kms_client()
    key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    env = {k: v for k, v in kmsgate_server.cli_env().items()}
    env.update(AWS_REGION=kmsgate_server.region, NODE_PATH=str(JS_MODULES))
    # An .mjs import resolves packages from the script's directory upwards, not NODE_PATH: run a copy
    # next to the installed modules.
    runner = JS_MODULES.parent / f"sign_verify-{os.getpid()}.mjs"
    runner.write_text(SCRIPT.read_text())
    try:
        result = subprocess.run([NODE, str(runner), key_id, "signed by the JS SDK"], env=env,
                                capture_output=True, text=True, timeout=120)
    finally:
        runner.unlink()
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["keyId"].endswith(key_id)
    assert answer["signatureValid"] is True
    assert answer["tampered"] == "KMSInvalidSignatureException"
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(base64.b64decode(answer["signature"]), b"signed by the JS SDK", ec.ECDSA(hashes.SHA256()))
