"""The resource catalogue: every kind the apiserver serves, described once.

Discovery, routing, storage keys, tables and the CLI all read this table, so adding a
resource is one entry here plus its strategy.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Resource:
    group: str  # "" for core
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = field(
        default=(
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        )
    )

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def group_resource(self) -> str:
        """`pods`, `deployments.apps`: the name used in Status details and etcd keys."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


_ALL = ("all",)

RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "Namespace", "namespaces", False, ("ns",), ("status", "finalize")),
    Resource(
        "",
        "v1",
        "Pod",
        "pods",
        True,
        ("po",),
        (
            "status",
            "binding",
            "eviction",
            "log",
            "exec",
            "attach",
            "portforward",
            "ephemeralcontainers",
        ),
        _ALL,
    ),
    Resource("", "v1", "Service", "services", True, ("svc",), ("status", "proxy"), _ALL),
    Resource("", "v1", "Endpoints", "endpoints", True, ("ep",)),
    Resource("", "v1", "Node", "nodes", False, ("no",), ("status", "proxy")),
    Resource("", "v1", "ConfigMap", "configmaps", True, ("cm",)),
    Resource("", "v1", "Secret", "secrets", True),
    Resource("", "v1", "Event", "events", True, ("ev",)),
    Resource("", "v1", "ServiceAccount", "serviceaccounts", True, ("sa",), ("token",)),
    Resource(
        "apps", "v1", "Deployment", "deployments", True, ("deploy",), ("status", "scale"), _ALL
    ),
    Resource("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), ("status", "scale"), _ALL),
    Resource(
        "apps", "v1", "StatefulSet", "statefulsets", True, ("sts",), ("status", "scale"), _ALL
    ),
    Resource("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True),
    Resource("coordination.k8s.io", "v1", "Lease", "leases", True),
)

BY_KIND: dict[str, Resource] = {r.kind: r for r in RESOURCES}
BY_GROUP_PLURAL: dict[tuple[str, str], Resource] = {(r.group, r.plural): r for r in RESOURCES}


def group_versions() -> list[tuple[str, str]]:
    """(group, version) pairs in discovery order, core first."""
    seen: list[tuple[str, str]] = []
    for r in RESOURCES:
        if (r.group, r.version) not in seen:
            seen.append((r.group, r.version))
    return seen
