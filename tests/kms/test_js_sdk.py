"""The AWS SDK for JavaScript v3 (``@aws-sdk/client-kms``) against a real kmsgate: Sign and Verify;
ML-KEM keys with Encapsulate and Decapsulate (which the botocore boto3 pins does not know).

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
from cryptography.hazmat.primitives.asymmetric import ec, mlkem
from kyber_py.ml_kem import ML_KEM_512

from .helpers import signed_post

ROOT = Path(__file__).resolve().parents[2]
JS_MODULES = ROOT / ".venv" / "js" / "node_modules"
SCRIPT = Path(__file__).parent / "js" / "sign_verify.mjs"
KEM_SCRIPT = Path(__file__).parent / "js" / "encapsulate_decapsulate.mjs"
NODE = shutil.which("node")


def run_script(server: Any, script: Path, *args: str) -> dict[str, Any]:
    """Run ``script`` under node against ``server``; its one JSON line."""
    if NODE is None or not (JS_MODULES / "@aws-sdk" / "client-kms").is_dir():
        pytest.skip("node or @aws-sdk/client-kms is not installed (make tools installs them under .venv/js)")
    env = {k: v for k, v in server.cli_env().items()}
    env.update(AWS_REGION=server.region, NODE_PATH=str(JS_MODULES))
    # An .mjs import resolves packages from the script's directory upwards, not NODE_PATH: run a copy
    # next to the installed modules.
    runner = JS_MODULES.parent / f"{script.stem}-{os.getpid()}.mjs"
    runner.write_text(script.read_text())
    try:
        result = subprocess.run([NODE, str(runner), *args], env=env, capture_output=True, text=True, timeout=120)
    finally:
        runner.unlink()
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def test_the_js_sdk_signs_and_verifies_through_kmsgate(kmsgate_server: Any) -> None:
    kms = kmsgate_server.kms_client()
    key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    answer = run_script(kmsgate_server, SCRIPT, key_id, "signed by the JS SDK")
    assert answer["keyId"].endswith(key_id)
    assert answer["signatureValid"] is True
    assert answer["tampered"] == "KMSInvalidSignatureException"
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(base64.b64decode(answer["signature"]), b"signed by the JS SDK", ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize("spec", ["ML_KEM_512", "ML_KEM_768", "ML_KEM_1024"])
def test_the_js_sdk_encapsulates_and_decapsulates_through_kmsgate(kmsgate_server: Any, spec: str) -> None:
    answer = run_script(kmsgate_server, KEM_SCRIPT, spec)
    assert (answer["keySpec"], answer["keyUsage"]) == (spec, "ENCAPSULATE_DECAPSULATE")
    assert answer["encapsulationAlgorithms"] == answer["publicKeyAlgorithms"] == ["ML_KEM"]
    secret = base64.b64decode(answer["sharedSecret"])
    assert len(secret) == 32 and base64.b64decode(answer["decapsulated"]) == secret
    assert answer["decapsulationAlgorithm"] == "ML_KEM"
    assert answer["shortCiphertext"] == "InvalidCiphertextException"
    # The public key the JS client got encapsulates, outside kmsgate, a secret kmsgate decapsulates.
    spki = base64.b64decode(answer["publicKey"])
    if spec == "ML_KEM_512":
        local_secret, ciphertext = ML_KEM_512.encaps(spki[-800:])
    else:
        public = serialization.load_der_public_key(spki)
        assert isinstance(public, (mlkem.MLKEM768PublicKey, mlkem.MLKEM1024PublicKey))
        local_secret, ciphertext = public.encapsulate()
    body = json.dumps({"KeyId": answer["keyId"], "EncapsulationAlgorithm": "ML_KEM",
                       "SharedSecretCiphertextBlob": base64.b64encode(ciphertext).decode()}).encode()
    status, decapsulated = signed_post(kmsgate_server, body, "TrentService.Decapsulate")
    assert status == 200 and base64.b64decode(decapsulated["SharedSecret"]) == local_secret
