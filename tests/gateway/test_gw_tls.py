"""TLS on every listener, end to end: real clients verify kmsgate with a CA the test makes, client
certificates when required, a certificate reloaded on SIGHUP, and the refusal of plain HTTP off loopback."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_encryption_sdk
import boto3
import botocore.session
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import SSLError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import KmsgateServer, free_port, wait_for_port

LONG_AGO = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
FAR_AHEAD = datetime.datetime(2100, 1, 1, tzinfo=datetime.timezone.utc)


@dataclass
class Issued:
    cert: Path
    key: Path
    serial: int


class TestCa:
    """A certificate authority of the test's own, writing PEM files under ``directory``."""

    __test__ = False

    def __init__(self, directory: Path, name: str = "kmsgate test CA") -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.name = subject
        self.cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(self.key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(LONG_AGO).not_valid_after(FAR_AHEAD)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.file = directory / f"{name.replace(' ', '-')}.pem"
        self.file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, stem: str, *, server: bool = True) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        serial = x509.random_serial_number()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, stem)])).issuer_name(self.name)
            .public_key(key.public_key()).serial_number(serial).not_valid_before(LONG_AGO).not_valid_after(FAR_AHEAD)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                                  else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        )
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        cert_path, key_path = self.directory / f"{stem}.crt", self.directory / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
        return Issued(cert_path, key_path, serial)


def tls_server(base: Path, ca: TestCa, pair: Issued, *extra_args: str) -> KmsgateServer:
    server = KmsgateServer(
        data_dir=base / "data", ca_file=ca.file,
        extra_args=["--tls-cert", str(pair.cert), "--tls-key", str(pair.key), *extra_args],
    )
    server.start()
    return server


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCa:
    return TestCa(tmp_path_factory.mktemp("tls-ca"))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, ca: TestCa) -> Iterator[tuple[KmsgateServer, int]]:
    """A TLS kmsgate with the S3 API on, and its S3 port."""
    base = tmp_path_factory.mktemp("tls-served")
    s3_port = free_port()
    server = tls_server(base, ca, ca.issue("server"), "--s3-port", str(s3_port))
    yield server, s3_port
    server.stop()


def _serial_seen(port: int, context: ssl.SSLContext) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_boto3_verifies_the_kms_port_and_the_s3_port_with_the_ca(served: tuple[KmsgateServer, int],
                                                                 ca: TestCa) -> None:
    server, s3_port = served
    kms = server.kms_client()  # verify=<the CA file>
    key_id = kms.create_key(Description="over TLS")["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"secret")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"secret"
    s3 = server.boto_session().client(
        "s3", endpoint_url=f"https://127.0.0.1:{s3_port}", verify=str(ca.file),
        config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    s3.create_bucket(Bucket="over-tls")
    s3.put_object(Bucket="over-tls", Key="k", Body=b"object over TLS")
    assert s3.get_object(Bucket="over-tls", Key="k")["Body"].read() == b"object over TLS"


def test_the_aws_cli_verifies_both_ports_with_its_ca_bundle(served: tuple[KmsgateServer, int], ca: TestCa) -> None:
    server, s3_port = served
    env = server.cli_env()
    keys = subprocess.run(["aws", "kms", "list-keys", "--ca-bundle", str(ca.file), "--output", "json"],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert keys.returncode == 0, keys.stderr
    assert '"Keys"' in keys.stdout
    buckets = subprocess.run(["aws", "s3api", "list-buckets", "--endpoint-url", f"https://127.0.0.1:{s3_port}",
                              "--ca-bundle", str(ca.file), "--output", "json"],
                             env=env, capture_output=True, text=True, timeout=60, check=False)
    assert buckets.returncode == 0, buckets.stderr
    assert '"Buckets"' in buckets.stdout


def test_the_encryption_sdk_verifies_the_kms_port_through_a_botocore_session_with_the_ca(
        served: tuple[KmsgateServer, int], ca: TestCa, monkeypatch: pytest.MonkeyPatch) -> None:
    server, _ = served
    key_arn = server.kms_client().create_key()["KeyMetadata"]["Arn"]
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.secret_access_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", server.region)
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", server.endpoint_url)
    session = botocore.session.Session()
    session.set_config_variable("ca_bundle", str(ca.file))
    provider = aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(key_ids=[key_arn], botocore_session=session)
    client = aws_encryption_sdk.EncryptionSDKClient()
    ciphertext, _header = client.encrypt(source=b"through the SDK", key_provider=provider)
    plaintext, _header = client.decrypt(source=ciphertext, key_provider=provider)
    assert plaintext == b"through the SDK"


def test_a_client_without_the_ca_is_refused_at_the_handshake(served: tuple[KmsgateServer, int]) -> None:
    server, s3_port = served
    for port in (server.port, s3_port):
        with pytest.raises(ssl.SSLCertVerificationError):
            _serial_seen(port, ssl.create_default_context())  # the system's CAs only
    kms = boto3.session.Session(aws_access_key_id=server.access_key_id,
                                aws_secret_access_key=server.secret_access_key, region_name=server.region
                                ).client("kms", endpoint_url=server.endpoint_url,
                                         config=BotoConfig(retries={"max_attempts": 1}))
    with pytest.raises(SSLError):
        kms.list_keys()


def test_plain_http_to_a_tls_port_gets_no_answer(served: tuple[KmsgateServer, int]) -> None:
    server, _ = served
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        connection.request("GET", "/healthz")
        connection.getresponse()
    connection.close()


def _get_healthz(port: int, context: ssl.SSLContext) -> int:
    connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status
    finally:
        connection.close()


def test_with_a_client_ca_a_client_needs_a_certificate_that_ca_signed(tmp_path: Path, ca: TestCa) -> None:
    client_ca = TestCa(tmp_path, "client CA")
    server_pair = ca.issue("client-ca-server")
    server = KmsgateServer(data_dir=tmp_path / "data", ca_file=ca.file, extra_args=[
        "--tls-cert", str(server_pair.cert), "--tls-key", str(server_pair.key),
        "--tls-client-ca", str(client_ca.file)])
    # The fixture's readiness probe has no client certificate: it must be refused, so wait differently.
    _start_without_probe(server)
    try:
        anonymous = ssl.create_default_context(cafile=str(ca.file))
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _get_healthz(server.port, anonymous)
        stranger_ca = TestCa(tmp_path, "stranger CA")
        stranger_pair = stranger_ca.issue("stranger", server=False)
        stranger = ssl.create_default_context(cafile=str(ca.file))
        stranger.load_cert_chain(str(stranger_pair.cert), str(stranger_pair.key))
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _get_healthz(server.port, stranger)
        client_pair = client_ca.issue("client", server=False)
        known = ssl.create_default_context(cafile=str(ca.file))
        known.load_cert_chain(str(client_pair.cert), str(client_pair.key))
        assert _get_healthz(server.port, known) == 200
        curl = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(ca.file),
                               "--cert", str(client_pair.cert), "--key", str(client_pair.key),
                               f"https://127.0.0.1:{server.port}/healthz"],
                              capture_output=True, text=True, timeout=60, check=False)
        assert curl.stdout == "200", curl.stderr
    finally:
        server.stop()


def _start_without_probe(server: KmsgateServer) -> None:
    """Start ``server`` and wait until its port accepts TCP connections (its health needs a client certificate)."""
    server.log_path = server.data_dir.parent / "server.log"
    log_file = open(server.log_path, "ab")  # noqa: SIM115 - closed with the process
    server.process = subprocess.Popen(
        [sys.executable, "-m", "kmsgate", "serve", "--host", "127.0.0.1", "--port", str(server.port),
         "--data-dir", str(server.data_dir), "--workers", "1", "--s3-port", "0", *server.extra_args],
        env=server.env(), stdout=log_file, stderr=log_file, start_new_session=True)
    log_file.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.process.poll() is None, server.log_text()
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("kmsgate did not listen in time")


def _wait_for(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_sighup_serves_a_new_certificate_to_new_connections_and_keeps_open_ones(tmp_path: Path, ca: TestCa) -> None:
    old = ca.issue("reloaded")
    server = tls_server(tmp_path, ca, old, "--workers", "2")
    try:
        context = ssl.create_default_context(cafile=str(ca.file))
        kept = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=10, context=context)
        kept.request("GET", "/healthz")
        assert kept.getresponse().read() is not None
        assert _serial_seen(server.port, context) == old.serial
        new = ca.issue("reloaded")  # the same paths, a new pair
        assert new.serial != old.serial
        assert server.process is not None
        server.process.send_signal(signal.SIGHUP)
        _wait_for(lambda: server.log_text().count("TLS certificate reloaded") == 2, "both workers to reload")
        for _ in range(8):  # the kernel spreads them over both workers
            assert _serial_seen(server.port, context) == new.serial
        kept.request("GET", "/healthz")
        response = kept.getresponse()
        assert response.status == 200
        response.read()
        assert kept.sock is not None
        der = kept.sock.getpeercert(binary_form=True)
        assert der is not None and x509.load_der_x509_certificate(der).serial_number == old.serial
        kept.close()
        assert server.process.poll() is None
    finally:
        server.stop()


def test_a_tls_key_readable_by_others_is_refused(tmp_path: Path, ca: TestCa) -> None:
    pair = ca.issue("loose")
    pair.key.chmod(0o644)
    result = subprocess.run(
        [sys.executable, "-m", "kmsgate", "serve", "--port", "0", "--data-dir", str(tmp_path / "data"),
         "--tls-cert", str(pair.cert), "--tls-key", str(pair.key)],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"kmsgate: --tls-key {pair.key} is readable by group or others (mode 0644); make it 0600 or 0400"]


def test_a_non_loopback_host_without_a_certificate_refuses_to_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kmsgate", "serve", "--host", "0.0.0.0", "--port", "0",
         "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "kmsgate: refusing plain HTTP on the non-loopback address 0.0.0.0: give --tls-cert and --tls-key, "
        "or --insecure-http to serve it unencrypted"]


def test_a_non_loopback_host_serves_plain_http_with_insecure_http(tmp_path: Path) -> None:
    server = KmsgateServer(data_dir=tmp_path / "data")
    port = server.port
    log_file = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "kmsgate", "serve", "--host", "0.0.0.0", "--insecure-http", "--port", str(port),
         "--s3-port", "0", "--workers", "0", "--data-dir", str(server.data_dir)],
        env=server.env(), stdout=log_file, stderr=log_file)
    try:
        wait_for_port(port, process)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log_file.close()


def _handshake_serial(server_context: ssl.SSLContext, client_context: ssl.SSLContext) -> int:
    """The serial of the certificate ``server_context`` presents, by a handshake in memory (no socket)."""
    client_in, client_out, server_in, server_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_context.wrap_bio(client_in, client_out, server_hostname="localhost")
    server = server_context.wrap_bio(server_in, server_out, server_side=True)
    done: set[str] = set()
    for _ in range(20):
        for name, side in (("client", client), ("server", server)):
            try:
                side.do_handshake()
                done.add(name)
            except ssl.SSLWantReadError:
                pass
        server_in.write(client_out.read())
        client_in.write(server_out.read())
        if done == {"client", "server"}:
            der = client.getpeercert(binary_form=True)
            assert der is not None
            return x509.load_der_x509_certificate(der).serial_number
    raise AssertionError("the handshake did not finish")


def test_a_reload_serves_the_new_pair_and_a_pair_that_cannot_serve_leaves_the_old_one(
        tmp_path: Path, ca: TestCa) -> None:
    from kmsgate.gateway.tls import TlsFiles, reload, server_context

    first = ca.issue("in-memory")
    files = TlsFiles(first.cert, first.key)
    serving = server_context(files)
    client = ssl.create_default_context(cafile=str(ca.file))
    assert _handshake_serial(serving, client) == first.serial
    second = ca.issue("in-memory")
    assert reload(serving, files) is True
    assert _handshake_serial(serving, client) == second.serial

    other = ca.issue("other")
    mismatched = TlsFiles(second.cert, other.key)
    assert reload(serving, mismatched) is False
    assert _handshake_serial(serving, client) == second.serial
    other.key.chmod(0o640)
    assert reload(serving, TlsFiles(other.cert, other.key)) is False
    assert _handshake_serial(serving, client) == second.serial


def test_a_client_that_never_finishes_its_handshake_is_closed_after_the_header_timeout(
        tmp_path: Path, ca: TestCa) -> None:
    server = tls_server(tmp_path, ca, ca.issue("stalled"), "--header-timeout", "1")
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw:
            # Without a bound of its own the handshake would wait 60 s (asyncio's default): past this timeout.
            assert raw.recv(1) == b""
    finally:
        server.stop()
