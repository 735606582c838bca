"""The emulated controller's own CA and API server certificate (like `juju bootstrap` makes).

The CA certificate goes into controllers.yaml (`ca-cert`); libjuju verifies the server
against it and, as for a real controller, skips the host name check. The certificates are
still valid for 127.0.0.1/localhost so other TLS clients (curl --cacert) accept them too.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Names Juju itself puts in its server certificates, plus loopback.
SERVER_DNS_NAMES = ("localhost", "juju-apiserver", "juju-mongodb", "anything")
SERVER_IPS = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class ControllerCerts:
    """PEM text of the CA certificate, and of the server certificate and its key."""

    ca_cert: str
    server_cert: str
    server_key: str

    def server_context(self) -> ssl.SSLContext:
        """A server-side TLS context presenting the server certificate (chained to the CA)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        # load_cert_chain wants files; write them to a private temporary folder briefly.
        with tempfile.TemporaryDirectory(prefix="botlab-juju-tls-") as tmp:
            cert, key = Path(tmp) / "server.pem", Path(tmp) / "server.key"
            cert.write_text(self.server_cert + self.ca_cert)
            key.touch(mode=0o600)
            key.write_text(self.server_key)
            context.load_cert_chain(str(cert), str(key))
        return context

    def client_context(self) -> ssl.SSLContext:
        """What libjuju builds: trust only this CA, no host name check."""
        context = ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH, cadata=self.ca_cert)
        context.check_hostname = False
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "juju"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
             now: datetime.datetime, until: datetime.datetime, *, ca: bool) -> x509.CertificateBuilder:
    """What the CA and the server certificate share; a CA signs certificates, a server
    enciphers keys."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=not ca,
                data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
    )


def make_certs(controller_uuid: str, *, valid_days: int = 3650) -> ControllerCerts:
    """A fresh CA (ECDSA P-256, like Juju's) and a server certificate it signed."""
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    until = now + datetime.timedelta(days=valid_days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name('juju-generated CA for model "juju-ca"')
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), now, until, ca=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in SERVER_DNS_NAMES]
    alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVER_IPS]
    server_cert = (
        _builder(_name(f"juju-apiserver {controller_uuid}"), ca_name, key.public_key(), now, until, ca=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return ControllerCerts(
        ca_cert=ca_cert.public_bytes(pem).decode(),
        server_cert=server_cert.public_bytes(pem).decode(),
        server_key=key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    )
