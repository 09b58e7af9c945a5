"""Writing the `minikube-py` context into the user's kubeconfig, and reading it back.

The file is the first path of `$KUBECONFIG`, else `~/.kube/config`. Other clusters,
users and contexts in it are kept; ours is replaced and made current. Removal takes out
only our three entries.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import yaml

CONTEXT = "minikube-py"


def kubeconfig_path() -> Path:
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), "")
    return Path(first) if first else Path.home() / ".kube" / "config"


def _load(path: Path) -> dict[str, Any]:
    if path.exists():
        data = yaml.safe_load(path.read_text()) or {}
        if isinstance(data, dict):
            return data
    return {"apiVersion": "v1", "kind": "Config", "preferences": {}}


def _upsert(cfg: dict[str, Any], section: str, key: str, value: dict[str, Any]) -> None:
    entries = [e for e in cfg.get(section) or [] if e.get("name") != CONTEXT]
    cfg[section] = [*entries, {"name": CONTEXT, key: value}]


def write_context(server: str, ca_pem: bytes, token: str, path: Path | None = None) -> Path:
    path = path or kubeconfig_path()
    cfg = _load(path)
    _upsert(
        cfg,
        "clusters",
        "cluster",
        {
            "server": server,
            "certificate-authority-data": base64.b64encode(ca_pem).decode(),
        },
    )
    _upsert(cfg, "users", "user", {"token": token})
    _upsert(
        cfg,
        "contexts",
        "context",
        {
            "cluster": CONTEXT,
            "user": CONTEXT,
            "namespace": "default",
        },
    )
    cfg["current-context"] = CONTEXT
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".mkpy-tmp")
    tmp.write_text(yaml.safe_dump(cfg, sort_keys=False))
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path


def remove_context(path: Path | None = None) -> None:
    path = path or kubeconfig_path()
    if not path.exists():
        return
    cfg = _load(path)
    for section in ("clusters", "users", "contexts"):
        cfg[section] = [e for e in cfg.get(section) or [] if e.get("name") != CONTEXT]
    if cfg.get("current-context") == CONTEXT:
        cfg["current-context"] = ""
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
