"""Service accounts as pods see them: the names the apiserver, the controllers and the
agents agree on, and the ServiceAccount admission's token volume (a pure function).

A pod that mounts its account's token gets kube's `kube-api-access-<suffix>` projected
volume: a bound token (`serviceAccountToken`, refreshed by the agent before it expires),
the cluster CA (ConfigMap `kube-root-ca.crt`, published in every namespace) and the
pod's namespace (downward API), mounted read-only at MOUNT_PATH in every container.
"""

from __future__ import annotations

from minikube_py.api.names import random_suffix
from minikube_py.api.types import Obj

DEFAULT_ACCOUNT = "default"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
ROOT_CA_KEY = "ca.crt"
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
VOLUME_PREFIX = "kube-api-access-"
# kube's admission asks for 3607 s: an hour plus a margin that marks such tokens
TOKEN_SECONDS = 3607
TOKEN_SECONDS_DEFAULT = 3600  # a TokenRequest or projection that names no lifetime
TOKEN_SECONDS_MIN = 600


def subject(namespace: str, name: str) -> str:
    """The user name a token of this account authenticates as."""
    return f"system:serviceaccount:{namespace}:{name}"


def token_volume(suffix: str | None = None) -> Obj:
    return {
        "name": VOLUME_PREFIX + (suffix or random_suffix()),
        "projected": {
            "defaultMode": 0o644,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_SECONDS, "path": "token"}},
                {
                    "configMap": {
                        "name": ROOT_CA_CONFIGMAP,
                        "items": [{"key": ROOT_CA_KEY, "path": ROOT_CA_KEY}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ],
        },
    }


def mounts_token(pod: Obj, account: Obj | None) -> bool:
    """The pod's `automountServiceAccountToken` wins over its account's; both default
    to true."""
    spec = pod.get("spec") or {}
    if spec.get("automountServiceAccountToken") is not None:
        return bool(spec["automountServiceAccountToken"])
    return (account or {}).get("automountServiceAccountToken") is not False


def add_token_volume(pod: Obj) -> None:
    """Mount a token volume at MOUNT_PATH in every container that mounts nothing there,
    as kube's ServiceAccount admission does; no volume if no container needs it."""
    spec = pod.setdefault("spec", {})
    containers = [
        c
        for key in ("initContainers", "containers")
        for c in spec.get(key) or []
        if not any(m.get("mountPath") == MOUNT_PATH for m in c.get("volumeMounts") or [])
    ]
    if not containers:
        return
    volume = token_volume()
    spec["volumes"] = [*(spec.get("volumes") or []), volume]
    for container in containers:
        container["volumeMounts"] = [
            *(container.get("volumeMounts") or []),
            {"name": volume["name"], "readOnly": True, "mountPath": MOUNT_PATH},
        ]
