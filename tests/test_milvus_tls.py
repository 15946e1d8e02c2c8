"""A TLS failure says which certificate problem it is: no CA, a wrong CA, a wrong server name, plaintext to a TLS
server and TLS to a plaintext one each get their own line, not `cannot reach`. The servers are real gRPC servers
(as Milvus is one), with a certificate made here; past the handshake they answer nothing, so a right setting is
told by a different failure: the server is not Milvus."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from retriever.errors import RetrieverError
from retriever.milvus.connection import connect
from retriever.milvus.location import Location


def certificate(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for `name`, which is its own CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem, key_pem = folder / f"{name}.pem", folder / f"{name}.key"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return pem, key_pem


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, int, int]]:
    """The server's CA, another CA, and the ports of a TLS and a plaintext gRPC server."""
    folder = tmp_path_factory.mktemp("tls")
    pem, key = certificate(folder, "milvus.test")
    other, _ = certificate(folder, "other.test")
    tls, plain = grpc.server(futures.ThreadPoolExecutor(2)), grpc.server(futures.ThreadPoolExecutor(2))
    credentials = grpc.ssl_server_credentials([(key.read_bytes(), pem.read_bytes())])
    tls_port = tls.add_secure_port("127.0.0.1:0", credentials)
    plain_port = plain.add_insecure_port("127.0.0.1:0")
    tls.start(), plain.start()
    yield pem, other, tls_port, plain_port
    tls.stop(0), plain.stop(0)


@pytest.mark.parametrize(
    ("server", "options", "says"),
    [
        ("tls", "", "the server speaks TLS; add ?tls=1"),
        ("tls", "tls=1", "the server's certificate is not trusted here (self-signed certificate); give the CA"),
        ("tls", "ca={other}&server_name=milvus.test", "is not signed by the CA in {other}"),
        ("tls", "ca={ca}&server_name=wrong.test", "the server's certificate is not for 'wrong.test'"),
        ("tls", "ca={ca}", "the server's certificate is not for '127.0.0.1'"),
        ("plain", "tls=1", "the server does not speak TLS"),
        ("plain", "ca={ca}&server_name=milvus.test", "the server does not speak TLS"),
    ],
)
def test_a_tls_problem_is_named(servers: tuple[Path, Path, int, int], server: str, options: str, says: str) -> None:
    ca, other, tls_port, plain_port = servers
    port = tls_port if server == "tls" else plain_port
    query = options.format(ca=ca, other=other)
    with pytest.raises(RetrieverError) as caught:
        connect(Location.parse(f"milvus://127.0.0.1:{port}/notes?connect_timeout=3&{query}".rstrip("&")))
    message = str(caught.value)
    assert says.format(ca=ca, other=other) in message and "cannot reach" not in message, message
    assert len(message.splitlines()) == 1


def test_right_tls_settings_pass_the_handshake(servers: tuple[Path, Path, int, int]) -> None:
    ca, _, tls_port, _ = servers
    with pytest.raises(RetrieverError) as caught:  # through TLS to a server that is not Milvus
        connect(
            Location.parse(f"milvus://127.0.0.1:{tls_port}/notes?connect_timeout=3&ca={ca}&server_name=milvus.test")
        )
    assert "UNIMPLEMENTED" in str(caught.value) and "TLS" not in str(caught.value)
