"""configMap and secret volumes: their files, and the kubelet's atomic writer.

`volume_files` is pure: the volume's source and the object it names give the files
(path -> content, mode), honouring `items`, `defaultMode`, per-item `mode` and
`optional`, or a `VolumeError` with the kubelet's message.

`write_atomic` lays them out as the kubelet's AtomicWriter does, so a container sees
the whole new set or the whole old one, never a mix:

    <volume>/..2026_01_01_10_00_00.1234/key     the payload, one directory per version
    <volume>/..data -> ..2026_01_01_10_00_00.1234
    <volume>/key -> ..data/key                  one link per top-level path

A new version is written to a new timestamped directory, `..data` is swapped to it with
a rename (atomic), the visible links are added or removed, and the old directory is
deleted. The volume directory is bind-mounted into the containers, so they see the
swap; a subPath mount binds the resolved file and keeps the version it started with,
as in Kubernetes.
"""

from __future__ import annotations

import base64
import datetime
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from minikube_py.api.types import Obj

DATA_DIR = "..data"
DEFAULT_MODE = 0o644

Files = Mapping[str, tuple[bytes, int]]
"""Relative path -> (content, mode)."""


class VolumeError(Exception):
    """A volume cannot be set up; the message is the kubelet's."""


def volume_source(volume: Obj) -> tuple[str, str] | None:
    """(kind, name) of the object a configMap or secret volume shows; None otherwise."""
    if "configMap" in volume:
        return "ConfigMap", str(volume["configMap"].get("name", ""))
    if "secret" in volume:
        return "Secret", str(volume["secret"].get("secretName", ""))
    return None


def volume_files(volume: Obj, source: Obj | None) -> dict[str, tuple[bytes, int]]:
    """Files of a configMap or secret volume from its object (None: it does not exist)."""
    field = "configMap" if "configMap" in volume else "secret"
    ref = volume[field]
    name = ref.get("name") if field == "configMap" else ref.get("secretName")
    if source is None:
        if ref.get("optional"):
            return {}
        raise VolumeError(f'{field.lower()} "{name}" not found')
    data: dict[str, bytes] = {}
    if field == "configMap":
        data.update({k: str(v).encode() for k, v in (source.get("data") or {}).items()})
        data.update({k: base64.b64decode(v) for k, v in (source.get("binaryData") or {}).items()})
    else:
        data.update({k: base64.b64decode(v) for k, v in (source.get("data") or {}).items()})
        data.update({k: str(v).encode() for k, v in (source.get("stringData") or {}).items()})
    mode = int(ref.get("defaultMode", DEFAULT_MODE))
    items = ref.get("items")
    if not items:
        return {key: (value, mode) for key, value in data.items()}
    files = {}
    for item in items:
        if item["key"] not in data:
            if ref.get("optional"):
                continue
            what = (
                "configmap references non-existent config key"
                if field == "configMap"
                else ("references non-existent secret key")
            )
            raise VolumeError(f"{what}: {item['key']}")
        files[item["path"]] = (data[item["key"]], int(item.get("mode", mode)))
    return files


def _clean(relative: str) -> str:
    """The payload path, normalised; a path leaving the volume or hiding among the
    writer's own `..` entries is refused, as by validatePayload."""
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise VolumeError(f"invalid path {relative!r}: must be relative and may not contain '..'")
    if path.parts[0].startswith(".."):
        raise VolumeError(f"invalid path {relative!r}: may not start with '..'")
    return str(path)


def read_current(directory: Path) -> dict[str, tuple[bytes, int]]:
    """The files of the version `..data` points at (empty when none was written)."""
    current = directory / DATA_DIR
    if not current.is_dir():
        return {}
    found = {}
    for path in current.rglob("*"):
        if path.is_file():
            found[str(path.relative_to(current))] = (
                path.read_bytes(),
                path.stat().st_mode & 0o7777,
            )
    return found


def write_atomic(directory: Path, files: Files) -> bool:
    """Make the volume show exactly `files`; False when it already did."""
    payload = {_clean(path): value for path, value in files.items()}
    directory.mkdir(parents=True, exist_ok=True)
    old = read_current(directory)
    if old == payload and (directory / DATA_DIR).is_symlink():
        return False
    stamp = datetime.datetime.now(datetime.UTC).strftime("..%Y_%m_%d_%H_%M_%S.")
    version = Path(tempfile.mkdtemp(prefix=stamp, dir=directory))
    version.chmod(0o755)
    for relative, (content, mode) in payload.items():
        path = version / relative
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)
    previous = os.readlink(directory / DATA_DIR) if (directory / DATA_DIR).is_symlink() else None
    swap = directory / f"{DATA_DIR}_tmp"
    swap.unlink(missing_ok=True)
    swap.symlink_to(version.name)
    swap.rename(directory / DATA_DIR)
    visible = {PurePosixPath(path).parts[0] for path in payload}
    for top in visible:
        link = directory / top
        if not os.path.lexists(link):  # what else is there (a subPath's dir) is left alone
            link.symlink_to(f"{DATA_DIR}/{top}")
    for top in {PurePosixPath(path).parts[0] for path in old} - visible:
        (directory / top).unlink(missing_ok=True)
    if previous is not None and previous != version.name:
        shutil.rmtree(directory / previous, ignore_errors=True)
    return True
