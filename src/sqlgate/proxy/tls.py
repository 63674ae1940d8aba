"""TLS contexts: the client-facing server context and the per-target client contexts."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sqlgate.config import BackendTls, TargetConfig, TlsConfig
from sqlgate.errors import ConfigError

log = logging.getLogger(__name__)


def self_signed_pem(common_name: str = "sqlgate") -> tuple[bytes, bytes]:
    """A fresh EC P-256 key and a one-year self-signed certificate for it, both PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def client_facing_context(config: TlsConfig) -> ssl.SSLContext:
    """The context that terminates client TLS; self-signed when no cert is configured."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if config.cert is not None and config.key is not None:
        try:
            ctx.load_cert_chain(config.cert, config.key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cannot load tls.cert/tls.key ({config.cert}, {config.key}): {exc}"
            ) from None
        return ctx
    cert_pem, key_pem = self_signed_pem()
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert_path.write_bytes(cert_pem)
        key_path.touch(mode=0o600)
        key_path.write_bytes(key_pem)
        ctx.load_cert_chain(cert_path, key_path)
    log.warning(
        "no tls.cert configured: serving a self-signed certificate generated at start; "
        "clients cannot verify it (use sslmode=require, not verify-full)"
    )
    return ctx


def backend_context(target: TargetConfig) -> ssl.SSLContext | None:
    """The context for connecting to a target server, per its `tls` mode."""
    if target.tls is BackendTls.DISABLE:
        return None
    if target.tls is BackendTls.VERIFY_FULL:
        ctx = ssl.create_default_context(
            cafile=str(target.tls_ca_file) if target.tls_ca_file else None
        )
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx
    # prefer / require: encrypt, but like libpq, do not verify the certificate.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx
