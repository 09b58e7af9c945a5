"""configMap, secret, downwardAPI and projected volumes: their files, and the kubelet's
atomic writer.

`volume_files` is pure: the volume, the ConfigMaps and Secrets it names (through a
lookup), the pod and the service account tokens it shows give the files (path ->
content, mode), honouring `items`, `defaultMode`, per-item `mode` and `optional`, or a
`VolumeError` with the kubelet's message. A projected volume lays its configMap,
secret, downwardAPI and serviceAccountToken sources out together (kube's
`kube-api-access-*` volume is a token, the cluster CA and the namespace). A token file
has the volume's `defaultMode`, as in kube; the tokens themselves are fetched and
refreshed before, by agent.tokens, and come in as a mapping, the source's `path` ->
the token.

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
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from agent.env import Lookup, PodFacts, field_ref_value, resource_field_value
from agent.runtime import RuntimeFailure
from minikube_py.api.types import Obj

DATA_DIR = "..data"
DEFAULT_MODE = 0o644

Files = Mapping[str, tuple[bytes, int]]
"""Relative path -> (content, mode)."""


class VolumeError(Exception):
    """A volume cannot be set up; the message is the kubelet's."""


WRITTEN_KINDS = ("configMap", "secret", "downwardAPI", "projected")
"""The volume kinds whose files the agent writes (emptyDir and hostPath are the runtime's)."""


def volume_objects(volume: Obj) -> list[tuple[str, str]]:
    """(kind, name) of every ConfigMap and Secret a volume shows."""
    found = []
    for entry in _entries(volume):
        named = _object_ref(entry)
        if named is not None:
            found.append((named[0], named[2]))
    return found


def volume_files(
    volume: Obj,
    lookup: Lookup,
    pod: Obj,
    facts: PodFacts,
    tokens: Mapping[str, bytes] | None = None,
) -> Files:
    """Files of a configMap, secret, downwardAPI or projected volume (see WRITTEN_KINDS):
    `lookup` finds the ConfigMaps and Secrets, `pod` and `facts` answer the downward API,
    `tokens` holds the token of each serviceAccountToken source by its `path`.
    A projected volume's sources are laid out together, later ones over earlier ones."""
    holder = volume.get("projected") or next(volume[k] for k in WRITTEN_KINDS if k in volume)
    mode = int(holder.get("defaultMode", DEFAULT_MODE))
    files: dict[str, tuple[bytes, int]] = {}
    for entry in _entries(volume):
        named = _object_ref(entry)
        if named is not None:
            files.update(_object_files(*named, lookup, mode))
        elif "downwardAPI" in entry:
            files.update(_downward_files(entry["downwardAPI"].get("items"), mode, pod, facts))
        elif "serviceAccountToken" in entry:
            path = str(entry["serviceAccountToken"].get("path", ""))
            token = (tokens or {}).get(path)
            if token is None:
                raise VolumeError(f"failed to fetch token: no token was fetched for {path!r}")
            files[path] = (token, mode)
        else:
            kind = next(iter(entry), "")
            raise VolumeError(f"projected source {kind} is not supported by this cluster")
    return files


def _entries(volume: Obj) -> list[Obj]:
    """What a volume shows: itself, or a projected volume's sources (each one thing)."""
    projected = volume.get("projected")
    return list(projected.get("sources") or []) if projected is not None else [volume]


def _object_ref(entry: Obj) -> tuple[str, Obj, str] | None:
    """(kind, reference, name) of the ConfigMap or Secret a volume or projected source
    shows: a secret volume names it `secretName`, a projected secret `name`."""
    if "configMap" in entry:
        ref = entry["configMap"]
        return "ConfigMap", ref, str(ref.get("name", ""))
    if "secret" in entry:
        ref = entry["secret"]
        return "Secret", ref, str(ref.get("secretName", ref.get("name", "")))
    return None


_MISSING_KEY = {  # the kubelet's two messages
    "ConfigMap": "configmap references non-existent config key: ",
    "Secret": "references non-existent secret key: ",
}


def _object_files(kind: str, ref: Obj, name: str, lookup: Lookup, mode: int) -> Files:
    """Files of one ConfigMap or Secret (all its keys, or the `items` chosen)."""
    source = lookup(kind, name)
    if source is None:
        if ref.get("optional"):
            return {}
        raise VolumeError(f'{kind.lower()} "{name}" not found')
    data: dict[str, bytes] = {}
    if kind == "ConfigMap":
        data.update({k: str(v).encode() for k, v in (source.get("data") or {}).items()})
        data.update({k: base64.b64decode(v) for k, v in (source.get("binaryData") or {}).items()})
    else:
        data.update({k: base64.b64decode(v) for k, v in (source.get("data") or {}).items()})
        data.update({k: str(v).encode() for k, v in (source.get("stringData") or {}).items()})
    items = ref.get("items")
    if not items:
        return {key: (value, mode) for key, value in data.items()}
    files = {}
    for item in items:
        if item["key"] not in data:
            if ref.get("optional"):
                continue
            raise VolumeError(_MISSING_KEY[kind] + item["key"])
        files[item["path"]] = (data[item["key"]], int(item.get("mode", mode)))
    return files


def _downward_files(items: list[Obj] | None, mode: int, pod: Obj, facts: PodFacts) -> Files:
    """Files of downward API items: a pod field (labels and annotations whole, one
    `key="value"` line each, sorted, as the kubelet's FormatMap) or a container's
    resource."""
    files = {}
    for item in items or []:
        try:
            if "fieldRef" in item:
                path = str(item["fieldRef"].get("fieldPath", ""))
                if path in ("metadata.labels", "metadata.annotations"):
                    fields = pod.get("metadata", {}).get(path.partition(".")[2]) or {}
                    value = "\n".join(f"{k}={_go_quoted(v)}" for k, v in sorted(fields.items()))
                else:
                    value = field_ref_value(pod, path, facts)
            else:
                ref = item.get("resourceFieldRef") or {}
                container = {"name": ref.get("containerName", "")}
                value = resource_field_value(pod, container, ref, facts)
        except RuntimeFailure as failure:
            raise VolumeError(failure.message) from failure
        files[item["path"]] = (value.encode(), int(item.get("mode", mode)))
    return files


def _go_quoted(value: Any) -> str:
    """Go's `%q` of a string, for the printable text labels and annotations hold."""
    return json.dumps(str(value), ensure_ascii=False)


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
