"""Small pieces of the launcher: kubeconfig merging, etcd endpoints, PKI, discovery."""

from pathlib import Path

import yaml
from cryptography import x509

from apiserver import discovery
from apiserver.storage import parse_endpoints
from minikube_py import certs, kubeconfig
from minikube_py.api.resources import RESOURCES


def test_kubeconfig_context_is_added_beside_others_and_removed_alone(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "other",
                "clusters": [{"name": "other", "cluster": {"server": "https://other"}}],
                "users": [{"name": "other", "user": {"token": "x"}}],
                "contexts": [{"name": "other", "context": {"cluster": "other", "user": "other"}}],
            }
        )
    )
    kubeconfig.write_context("https://127.0.0.1:8443", b"PEM", "tok", path)
    kubeconfig.write_context("https://127.0.0.1:9443", b"PEM", "tok2", path)  # replaces
    cfg = yaml.safe_load(path.read_text())
    assert cfg["current-context"] == "minikube-py"
    assert [c["name"] for c in cfg["clusters"]] == ["other", "minikube-py"]
    assert cfg["clusters"][1]["cluster"]["server"] == "https://127.0.0.1:9443"
    kubeconfig.remove_context(path)
    cfg = yaml.safe_load(path.read_text())
    assert [c["name"] for c in cfg["contexts"]] == ["other"]
    assert cfg["current-context"] == ""


def test_parse_etcd_endpoints() -> None:
    assert parse_endpoints("http://127.0.0.1:2379, 127.0.0.2:22379") == [
        ("127.0.0.1", 2379),
        ("127.0.0.2", 22379),
    ]


def test_serving_cert_covers_requested_addresses_and_is_reused(tmp_path: Path) -> None:
    crt, _ = certs.ensure_serving_cert(tmp_path, ["127.0.0.1"], ["localhost"])
    first = crt.read_bytes()
    assert (
        certs.ensure_serving_cert(tmp_path, ["127.0.0.1"], ["localhost"])[0].read_bytes() == first
    )
    crt, _ = certs.ensure_serving_cert(tmp_path, ["127.0.0.1", "192.168.49.1"], ["localhost"])
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(i) for i in san.get_values_for_type(x509.IPAddress)} == {
        "127.0.0.1",
        "192.168.49.1",
    }


def test_discovery_lists_every_resource_once_in_both_forms() -> None:
    legacy = discovery.api_resource_list("", "v1")
    assert legacy is not None
    names = {r["name"] for r in legacy["resources"]}
    assert {"pods", "pods/status", "pods/binding", "services", "nodes/status"} <= names
    agg = discovery.aggregated(legacy=False)
    served = {
        (i["metadata"]["name"], r["resource"])
        for i in agg["items"]
        for v in i["versions"]
        for r in v["resources"]
    }
    assert served == {(r.group, r.plural) for r in RESOURCES if r.group}
