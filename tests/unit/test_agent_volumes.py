"""configMap and secret volumes (agent.volumes): their files from the object, and the
kubelet's atomic-writer layout on a real (temporary) directory."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.volumes import DATA_DIR, VolumeError, read_current, volume_files, write_atomic

# --- volumes --------------------------------------------------------------------------


def test_configmap_volume_files_with_items_and_modes() -> None:
    items = [{"key": "a", "path": "dir/a.txt"}, {"key": "b", "path": "b", "mode": 0o755}]
    volume = {"name": "v", "configMap": {"name": "cm", "defaultMode": 0o600, "items": items}}
    source = {"metadata": {"name": "cm"}, "data": {"a": "A", "b": "B", "c": "C"}}
    assert volume_files(volume, source) == {"dir/a.txt": (b"A", 0o600), "b": (b"B", 0o755)}


def test_secret_volume_decodes_data() -> None:
    volume = {"name": "v", "secret": {"secretName": "s"}}
    source = {"metadata": {"name": "s"}, "data": {"pw": base64.b64encode(b"\x00hunter2").decode()}}
    assert volume_files(volume, source) == {"pw": (b"\x00hunter2", 0o644)}


def test_missing_source_fails_unless_optional() -> None:
    with pytest.raises(VolumeError, match=r'^configmap "nope" not found$'):
        volume_files({"name": "v", "configMap": {"name": "nope"}}, None)
    assert volume_files({"name": "v", "secret": {"secretName": "x", "optional": True}}, None) == {}


def test_missing_items_keys_fail_unless_optional() -> None:
    items = [{"key": "absent", "path": "a"}, {"key": "b", "path": "b"}]
    source = {"data": {"b": "B"}}
    with pytest.raises(VolumeError, match=r"^configmap references non-existent config key: absent"):
        volume_files({"name": "v", "configMap": {"name": "cm", "items": items}}, source)
    with pytest.raises(VolumeError, match=r"^references non-existent secret key: absent$"):
        volume_files({"name": "v", "secret": {"secretName": "s", "items": items}}, {"data": {}})
    optional = {"name": "cm", "items": items, "optional": True}
    assert volume_files({"name": "v", "configMap": optional}, source) == {"b": (b"B", 0o644)}


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
