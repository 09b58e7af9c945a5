"""configMap, secret, downwardAPI and projected volumes (agent.volumes): their files from
the objects and the pod, and the kubelet's atomic-writer layout on a real (temporary)
directory."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.env import PodFacts
from agent.volumes import (
    DATA_DIR,
    VolumeError,
    read_current,
    volume_files,
    volume_objects,
    write_atomic,
)
from minikube_py.api.serviceaccounts import token_volume

POD = {
    "metadata": {
        "name": "web-0",
        "namespace": "shop",
        "uid": "u-1",
        "labels": {"tier": "front", "app": "web"},
        "annotations": {"note": 'say "hi"'},
    },
    "spec": {"containers": [{"name": "main", "resources": {"limits": {"memory": "64Mi"}}}]},
}
FACTS = PodFacts((), ("192.168.49.2",), {"cpu": "2", "memory": "4Gi"})


def files_of(
    volume: dict[str, Any], *objects: dict[str, Any], tokens: dict[str, bytes] | None = None
) -> Any:
    """The volume's files, its ConfigMaps and Secrets found among `objects`, its
    serviceAccountToken sources' tokens in `tokens` (by path)."""
    found = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    return volume_files(volume, lambda kind, name: found.get((kind, name)), POD, FACTS, tokens)


def config_map(name: str, **data: str) -> dict[str, Any]:
    return {"kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def secret(name: str, **data: bytes) -> dict[str, Any]:
    encoded = {k: base64.b64encode(v).decode() for k, v in data.items()}
    return {"kind": "Secret", "metadata": {"name": name}, "data": encoded}


# --- volumes --------------------------------------------------------------------------


def test_configmap_volume_files_with_items_and_modes() -> None:
    items = [{"key": "a", "path": "dir/a.txt"}, {"key": "b", "path": "b", "mode": 0o755}]
    volume = {"name": "v", "configMap": {"name": "cm", "defaultMode": 0o600, "items": items}}
    source = config_map("cm", a="A", b="B", c="C")
    assert files_of(volume, source) == {"dir/a.txt": (b"A", 0o600), "b": (b"B", 0o755)}


def test_secret_volume_decodes_data() -> None:
    volume = {"name": "v", "secret": {"secretName": "s"}}
    assert files_of(volume, secret("s", pw=b"\x00hunter2")) == {"pw": (b"\x00hunter2", 0o644)}


def test_missing_source_fails_unless_optional() -> None:
    with pytest.raises(VolumeError, match=r'^configmap "nope" not found$'):
        files_of({"name": "v", "configMap": {"name": "nope"}})
    assert files_of({"name": "v", "secret": {"secretName": "x", "optional": True}}) == {}


def test_missing_items_keys_fail_unless_optional() -> None:
    items = [{"key": "absent", "path": "a"}, {"key": "b", "path": "b"}]
    source = config_map("cm", b="B")
    with pytest.raises(VolumeError, match=r"^configmap references non-existent config key: absent"):
        files_of({"name": "v", "configMap": {"name": "cm", "items": items}}, source)
    with pytest.raises(VolumeError, match=r"^references non-existent secret key: absent$"):
        files_of({"name": "v", "secret": {"secretName": "s", "items": items}}, secret("s"))
    optional = {"name": "cm", "items": items, "optional": True}
    assert files_of({"name": "v", "configMap": optional}, source) == {"b": (b"B", 0o644)}


def test_downward_api_volume_shows_pod_fields_and_resources() -> None:
    items = [
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}, "mode": 0o400},
        {"path": "meta/annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
        {"path": "tier", "fieldRef": {"fieldPath": "metadata.labels['tier']"}},
        {"path": "mem", "resourceFieldRef": {"containerName": "main",
                                             "resource": "limits.memory", "divisor": "1Mi"}},
        {"path": "cpu", "resourceFieldRef": {"containerName": "main", "resource": "limits.cpu",
                                             "divisor": "1m"}},
    ]  # fmt: skip
    volume = {"name": "v", "downwardAPI": {"items": items, "defaultMode": 0o640}}
    assert files_of(volume) == {
        "name": (b"web-0", 0o640),
        # sorted, one key="value" line each, no newline after the last (the kubelet's)
        "labels": (b'app="web"\ntier="front"', 0o400),
        "meta/annotations": (b'note="say \\"hi\\""', 0o640),
        "tier": (b"front", 0o640),
        "mem": (b"64", 0o640),
        "cpu": (b"2000", 0o640),  # no limit: the node's allocatable
    }
    ref = {"containerName": "nope", "resource": "limits.cpu"}
    unknown = {"items": [{"path": "x", "resourceFieldRef": ref}]}
    with pytest.raises(VolumeError, match="container nope not found"):
        files_of({"name": "v", "downwardAPI": unknown})


def test_projected_volume_lays_its_sources_out_together() -> None:
    volume = {
        "name": "all",
        "projected": {
            "defaultMode": 0o600,
            "sources": [
                {"configMap": {"name": "cm", "items": [{"key": "a", "path": "conf/a"}]}},
                {"secret": {"name": "s"}},
                {"secret": {"name": "absent", "optional": True}},
                {"downwardAPI": {"items": [{"path": "ns", "mode": 0o444,
                                            "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
            ],
        },
    }  # fmt: skip
    found = files_of(volume, config_map("cm", a="A", b="B"), secret("s", token=b"t0k"))
    assert found == {"conf/a": (b"A", 0o600), "token": (b"t0k", 0o600), "ns": (b"shop", 0o444)}
    assert volume_objects(volume) == [("ConfigMap", "cm"), ("Secret", "s"), ("Secret", "absent")]
    with pytest.raises(VolumeError, match='secret "s" not found'):
        files_of(volume, config_map("cm", a="A"))
    bundle = {"clusterTrustBundle": {"name": "b", "path": "ca.pem"}}
    with pytest.raises(VolumeError, match="clusterTrustBundle is not supported"):
        files_of({"name": "b", "projected": {"sources": [bundle]}})


# --- service account tokens ------------------------------------------------------------


def test_kube_api_access_volume_shows_the_token_the_ca_and_the_namespace() -> None:
    volume = token_volume("x7k2p")  # exactly what the ServiceAccount admission adds
    root_ca = config_map("kube-root-ca.crt", **{"ca.crt": "-----BEGIN CERTIFICATE-----"})
    found = files_of(volume, root_ca, tokens={"token": b"eyJhbGciOiJFUzI1NiJ9.e30.sig"})
    assert found == {
        "token": (b"eyJhbGciOiJFUzI1NiJ9.e30.sig", 0o644),
        "ca.crt": (b"-----BEGIN CERTIFICATE-----", 0o644),
        "namespace": (b"shop", 0o644),
    }
    assert volume_objects(volume) == [("ConfigMap", "kube-root-ca.crt")]  # no Secret
    with pytest.raises(VolumeError, match=r'^configmap "kube-root-ca\.crt" not found$'):
        files_of(volume, tokens={"token": b"t"})


def test_a_token_file_has_the_volumes_default_mode_at_its_path() -> None:
    sources = [
        {"serviceAccountToken": {"path": "auth/vault-token", "audience": "vault",
                                 "expirationSeconds": 600}},
        {"serviceAccountToken": {"path": "token"}},
    ]  # fmt: skip
    volume = {"name": "t", "projected": {"defaultMode": 0o440, "sources": sources}}
    tokens = {"auth/vault-token": b"for-vault", "token": b"for-api"}
    assert files_of(volume, tokens=tokens) == {
        "auth/vault-token": (b"for-vault", 0o440),
        "token": (b"for-api", 0o440),
    }
    unset = {"name": "t", "projected": {"sources": sources[1:]}}
    assert files_of(unset, tokens=tokens) == {"token": (b"for-api", 0o644)}


def test_a_source_without_its_token_cannot_be_set_up() -> None:
    volume = token_volume("x7k2p")
    message = r"^failed to fetch token: no token was fetched for 'token'$"
    with pytest.raises(VolumeError, match=message):
        files_of(volume, config_map("kube-root-ca.crt", **{"ca.crt": "C"}))
    with pytest.raises(VolumeError, match=message):
        files_of(volume, config_map("kube-root-ca.crt", **{"ca.crt": "C"}), tokens={"x": b"t"})


def test_a_refreshed_token_swaps_the_whole_volume(tmp_path: Path) -> None:
    volume = token_volume("x7k2p")
    root_ca = config_map("kube-root-ca.crt", **{"ca.crt": "C"})
    directory = tmp_path / volume["name"]
    write_atomic(directory, files_of(volume, root_ca, tokens={"token": b"first"}))
    first = os.readlink(directory / DATA_DIR)
    assert os.readlink(directory / "token") == "..data/token"
    assert write_atomic(directory, files_of(volume, root_ca, tokens={"token": b"second"}))
    assert os.readlink(directory / DATA_DIR) != first
    assert visible(directory) == {"token": b"second", "ca.crt": b"C", "namespace": b"shop"}
    assert (directory / "token").stat().st_mode & 0o777 == 0o644


# --- the atomic writer ---------------------------------------------------------------------


def visible(directory: Path) -> dict[str, bytes]:
    """What a container sees: every file reachable from the visible names."""
    seen = {}
    for entry in directory.iterdir():
        if entry.name.startswith(".."):
            continue
        paths = [entry] if entry.is_file() else [p for p in entry.rglob("*") if p.is_file()]
        for path in paths:
            seen[str(path.relative_to(directory))] = path.read_bytes()
    return seen


def versions(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("..") and p.is_dir()
                  and not p.is_symlink())  # fmt: skip


def test_layout_is_the_kubelets(tmp_path: Path) -> None:
    volume = tmp_path / "v"
    assert write_atomic(volume, {"a": (b"A", 0o600), "dir/b": (b"B", 0o644)})
    data = volume / DATA_DIR
    assert data.is_symlink() and os.readlink(data).startswith("..20")
    assert versions(volume) == [os.readlink(data)]
    assert os.readlink(volume / "a") == "..data/a"
    assert os.readlink(volume / "dir") == "..data/dir"
    assert visible(volume) == {"a": b"A", "dir/b": b"B"}
    assert (volume / "a").stat().st_mode & 0o777 == 0o600
    assert not write_atomic(volume, {"a": (b"A", 0o600), "dir/b": (b"B", 0o644)})


def test_an_update_swaps_the_version_and_drops_removed_keys(tmp_path: Path) -> None:
    volume = tmp_path / "v"
    write_atomic(volume, {"a": (b"A", 0o644), "gone": (b"G", 0o644)})
    first = os.readlink(volume / DATA_DIR)
    held = (volume / "a").resolve()  # what a subPath mount of `a` bound
    assert write_atomic(volume, {"a": (b"A2", 0o644), "new": (b"N", 0o644)})
    assert os.readlink(volume / DATA_DIR) != first
    assert versions(volume) == [os.readlink(volume / DATA_DIR)]  # the old one is gone
    assert visible(volume) == {"a": b"A2", "new": b"N"}
    assert not (volume / "gone").is_symlink()
    assert not held.exists()  # the bound file keeps its inode; the path is gone


def test_a_mode_change_alone_writes_a_new_version(tmp_path: Path) -> None:
    volume = tmp_path / "v"
    write_atomic(volume, {"a": (b"A", 0o644)})
    assert write_atomic(volume, {"a": (b"A", 0o600)})
    assert (volume / "a").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("path", ["../x", "/etc/x", "..data/x", "..hidden", "a/../../x"])
def test_paths_leaving_the_volume_are_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(VolumeError):
        write_atomic(tmp_path / "v", {path: (b"x", 0o644)})


names = st.sampled_from(["a", "b", "c/d", "c/e", "f/g/h"])
payloads = st.dictionaries(names, st.tuples(st.binary(max_size=8), st.sampled_from([0o644, 0o600])))


@settings(max_examples=40, deadline=None)
@given(st.lists(payloads, min_size=1, max_size=4))
def test_any_sequence_of_updates_shows_exactly_the_last(
    tmp_path_factory: pytest.TempPathFactory, sequence: list[dict[str, tuple[bytes, int]]]
) -> None:
    volume = tmp_path_factory.mktemp("seq") / "v"
    for payload in sequence:
        write_atomic(volume, payload)
        assert read_current(volume) == payload
        assert visible(volume) == {path: content for path, (content, _) in payload.items()}
        assert len(versions(volume)) == 1


def test_a_sub_path_directory_in_the_way_is_left_alone(tmp_path: Path) -> None:
    volume = tmp_path / "v"
    write_atomic(volume, {"a": (b"A", 0o644)})
    (volume / "later").mkdir()  # what a subPath mount of a key not there yet makes
    assert write_atomic(volume, {"a": (b"A", 0o644), "later": (b"L", 0o644)})
    assert (volume / "later").is_dir() and not (volume / "later").is_symlink()
    assert read_current(volume) == {"a": (b"A", 0o644), "later": (b"L", 0o644)}
