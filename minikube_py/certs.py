"""The cluster's PKI: a CA and the apiserver's serving certificate, made at first start.

Files live in the state dir (`ca.crt`, `ca.key`, `apiserver.crt`, `apiserver.key`, and
`sa.key` that signs service account tokens) and are reused on later starts; the serving
certificate is remade when the addresses it must cover change (a node network added
later, say).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_VALID_DAYS = 3650


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(path, 0o600)


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def ensure_ca(directory: Path) -> tuple[Path, Path]:
    crt, key_path = directory / "ca.crt", directory / "ca.key"
    if crt.exists() and key_path.exists():
        return crt, key_path
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "minikube-py-ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return crt, key_path


def ensure_serving_cert(directory: Path, ips: list[str], dns_names: list[str]) -> tuple[Path, Path]:
    """The apiserver certificate for these addresses, signed by the cluster CA."""
    ca_crt, ca_key_path = ensure_ca(directory)
    crt, key_path = directory / "apiserver.crt", directory / "apiserver.key"
    wanted_ips = {ipaddress.ip_address(i) for i in ips}
    if crt.exists() and key_path.exists():
        existing = x509.load_pem_x509_certificate(crt.read_bytes())
        san = existing.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        if wanted_ips <= set(san.get_values_for_type(x509.IPAddress)) and set(dns_names) <= set(
            san.get_values_for_type(x509.DNSName)
        ):
            return crt, key_path
    ca = x509.load_pem_x509_certificate(ca_crt.read_bytes())
    ca_key = _load_key(ca_key_path)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    sans += [x509.IPAddress(i) for i in sorted(wanted_ips, key=str)]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(key_path, key)
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return crt, key_path


def ensure_service_account_key(directory: Path) -> Path:
    """The key the apiserver signs service account tokens with (`sa.key`, P-256)."""
    path = directory / "sa.key"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        _write_key(path, ec.generate_private_key(ec.SECP256R1()))
    return path
