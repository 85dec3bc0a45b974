"""Phase timing through aiohttp tracing: dns, connect, tls, first_byte, reuse, no tracing."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from _probe_helpers import FakeProvider, reply_json, target
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from exporter.providers import make_ssl_context, make_trace_config
from exporter.providers.openai import probe
from exporter.vocab import PHASES, Check

MODELS = {"object": "list", "data": [{"id": "m"}]}


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for localhost and 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
async def tls_fake(aiohttp_server, certificate) -> AsyncIterator[FakeProvider]:
    cert_path, key_path = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    fake = FakeProvider(handler=reply_json(MODELS))
    server = await aiohttp_server(fake.app(), ssl=context)
    fake.url = str(server.make_url("/v1"))
    assert fake.url.startswith("https://127.0.0.1:")
    yield fake
    fake.release.set()


async def test_tls_phase_measured_with_timed_context(tls_fake, certificate) -> None:
    """With make_ssl_context the handshake is its own phase; a reused connection reports 0."""
    connector = aiohttp.TCPConnector(ssl=make_ssl_context(cafile=str(certificate[0])))
    async with aiohttp.ClientSession(connector=connector,
                                     trace_configs=[make_trace_config()]) as session:
        first = await probe(session, target(tls_fake.url, "openai"), Check.MODELS)
        second = await probe(session, target(tls_fake.url, "openai"), Check.MODELS)
    assert first.success and second.success
    p = first.phases
    assert set(p) == {"dns", "connect", "tls", "first_byte", "total"} and set(p) <= set(PHASES)
    assert p["tls"] > 0 and p["connect"] > 0 and p["dns"] == 0.0  # an IP literal: no lookup
    assert p["connect"] + p["tls"] <= p["first_byte"] <= p["total"]
    assert (second.phases["dns"], second.phases["connect"], second.phases["tls"]) == (0, 0, 0)


async def test_tls_without_timed_context_folds_into_connect(tls_fake, certificate) -> None:
    """A plain SSLContext still works; the handshake is then counted in `connect`."""
    plain = ssl.create_default_context(cafile=str(certificate[0]))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=plain),
                                     trace_configs=[make_trace_config()]) as session:
        result = await probe(session, target(tls_fake.url, "openai"), Check.MODELS)
    assert result.success and "tls" not in result.phases and result.phases["connect"] > 0


async def test_dns_phase_for_a_host_name(aiohttp_server) -> None:
    """A name is resolved (dns > 0); the next new connection hits aiohttp's DNS cache (0)."""
    fake = FakeProvider(handler=reply_json(MODELS))
    server = await aiohttp_server(fake.app())
    url = f"http://localhost:{server.port}/v1"
    connector = aiohttp.TCPConnector(force_close=True)  # every probe opens a new connection
    async with aiohttp.ClientSession(connector=connector,
                                     trace_configs=[make_trace_config()]) as session:
        first = await probe(session, target(url, "openai"), Check.MODELS)
        second = await probe(session, target(url, "openai"), Check.MODELS)
    assert first.success and second.success
    assert first.phases["dns"] > 0 and "tls" not in first.phases
    assert second.phases["dns"] == 0.0 and second.phases["connect"] > 0


async def test_without_trace_config_only_runner_phases(aiohttp_server) -> None:
    """A session without make_trace_config still gets first_byte and total, nothing invented."""
    fake = FakeProvider(handler=reply_json(MODELS))
    server = await aiohttp_server(fake.app())
    async with aiohttp.ClientSession() as session:
        result = await probe(session, target(str(server.make_url("/v1")), "openai"), Check.MODELS)
    assert result.success and set(result.phases) == {"first_byte", "total"}
