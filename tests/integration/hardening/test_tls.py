"""HTTPS as `llmasos serve` runs it (`server.tls_cert`/`tls_key`): a real uvicorn with a self-signed certificate
answers over TLS, and a certificate that is not there is a clear error before anything listens."""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
from pathlib import Path

import httpx
import pytest
import uvicorn
from fakes import LoadedEngine

from llmasos.cli.serve_cmd import uvicorn_options
from llmasos.errors import ConfigError
from llmasos.server import create_app
from llmasos.settings import load_settings

pytestmark = pytest.mark.integration


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # (bound again at once below)


async def test_the_server_answers_over_https_with_the_configured_certificate(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    port = _free_port()
    settings = load_settings(
        None, data_dir=str(tmp_path), server={"port": port, "tls_cert": str(cert), "tls_key": str(key)}
    )
    options = uvicorn_options(settings)
    app = create_app(settings, loader=lambda s, p: LoadedEngine())  # type: ignore[arg-type,return-value]
    server = uvicorn.Server(uvicorn.Config(app, **{**options, "log_level": "warning"}))
    sock = socket.create_server(("127.0.0.1", port))  # listening now: connections wait in its backlog
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await asyncio.wait_for(app.state.llmasos.ready.wait(), 30)  # the (fake) models are loaded
        trusted = ssl.create_default_context(cafile=str(cert))  # the certificate is checked, not ignored
        async with httpx.AsyncClient(verify=trusted) as http:
            answer = await http.get(f"https://localhost:{port}/healthz")
            assert answer.status_code == 200 and answer.json()["status"] == "ok"
        async with httpx.AsyncClient() as http:
            with pytest.raises(httpx.HTTPError):  # plain HTTP on the TLS port is refused
                await http.get(f"http://127.0.0.1:{port}/healthz")
    finally:
        server.should_exit = True
        await task


def test_a_missing_certificate_or_half_a_pair_is_a_clear_error(tmp_path: Path) -> None:
    missing = load_settings(
        None, data_dir=str(tmp_path), server={"tls_cert": str(tmp_path / "no.pem"), "tls_key": str(tmp_path / "k")}
    )
    with pytest.raises(ConfigError, match="server.tls_cert .*no.pem does not exist"):
        uvicorn_options(missing)
    with pytest.raises(ConfigError, match="tls_cert and tls_key go together"):
        load_settings(None, data_dir=str(tmp_path), server={"tls_cert": str(tmp_path / "c.pem")})
