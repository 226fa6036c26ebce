"""A kubeconfig's inline client key (``client-key-data``, as ``kind`` and most clouds' files
write it) is never written to a file: the Python client copies it to ``$TMPDIR`` and removes
the copy only at a normal exit, so every crontask ended with ``kill -9``, a crash, or a stop
with a thread still waiting (which ends with ``os._exit``) left one more copy of the key (and
certificate) in ``/tmp``, after the key was rotated too. crontask holds them in memory
instead, where they end with the process.

No API server is contacted: :func:`connect` only loads the configuration.
"""

from __future__ import annotations

import base64
import datetime
import ssl
import tempfile
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from reconciler.sources.kubernetes import KubernetesOptions, connect


def pems() -> tuple[bytes, bytes]:
    """A client certificate and its private key, PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crontask")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def write_kubeconfig(path: Path, cert: bytes, key: bytes) -> Path:
    def data(pem: bytes) -> str:
        return base64.b64encode(pem).decode()

    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                # https: the client reads certificates only for it. Nothing listens there.
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": "https://127.0.0.1:38499",
                            "certificate-authority-data": data(cert),
                        },
                    }
                ],
                "users": [
                    {
                        "name": "u",
                        "user": {
                            "client-certificate-data": data(cert),
                            "client-key-data": data(key),
                        },
                    }
                ],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            }
        )
    )
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("loads", [1, 2])
def test_inline_client_key_is_never_written_to_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loads: int
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    cert, key = pems()
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", cert, key)

    for _ in range(loads):  # a second load (the job action's own connection) reads the same
        configuration = connect(KubernetesOptions(kubeconfig=kubeconfig)).api.configuration

        assert sorted(p.name for p in temp.iterdir()) == []
        assert Path(configuration.key_file).read_bytes() == key
        assert Path(configuration.cert_file).read_bytes() == cert
        assert Path(configuration.ssl_ca_cert).read_bytes() == cert
        # What urllib3 does with them at each connection.
        context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
