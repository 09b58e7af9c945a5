"""A small PatchSchema for the patch tests: subsets of Pod, Deployment and Service.

Each field carries the patch metadata Kubernetes declares for it (x-kubernetes-patch-
strategy, -patch-merge-key, -list-type, -list-map-keys). The one test here checks that
apiserver/schema.py, which serves the real schema, declares the same for every field
this subset names, so the patch tests speak about the real kinds.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import pytest

from apiserver.schema import schema_for


@dataclass(frozen=True)
class Schema:
    fields: Mapping[str, "Schema"] = field(default_factory=dict)
    element: "Schema | None" = None
    merge_key: str | None = None
    patch_strategy: str = ""
    list_type: str = ""
    map_keys: tuple[str, ...] = ()

    def field(self, name: str) -> "Schema | None":
        return self.fields.get(name)

    @property
    def items(self) -> "Schema | None":
        return self.element


LEAF = Schema()


def struct(**fields: Schema) -> Schema:
    return Schema(fields=fields)


def keyed_list(*keys: str, of: Schema, strategy: str = "merge") -> Schema:
    return Schema(
        element=of, merge_key=keys[0], patch_strategy=strategy, list_type="map", map_keys=keys
    )


PRIMITIVE_SET = Schema(element=LEAF, patch_strategy="merge", list_type="set")
# Lists without patch metadata are atomic: a patch or an apply replaces them whole.
STRINGS = Schema(element=LEAF)
TOLERATIONS = Schema(element=struct(key=LEAF, operator=LEAF, value=LEAF, effect=LEAF))

METADATA = struct(
    name=LEAF,
    namespace=LEAF,
    labels=LEAF,
    annotations=LEAF,
    finalizers=PRIMITIVE_SET,
    ownerReferences=keyed_list("uid", of=struct(uid=LEAF, kind=LEAF, name=LEAF)),
)
CONTAINER = struct(
    name=LEAF,
    image=LEAF,
    args=STRINGS,
    command=STRINGS,
    workingDir=LEAF,
    ports=keyed_list(
        "containerPort", "protocol", of=struct(containerPort=LEAF, protocol=LEAF, name=LEAF)
    ),
    env=keyed_list("name", of=struct(name=LEAF, value=LEAF)),
    volumeMounts=keyed_list("mountPath", of=struct(name=LEAF, mountPath=LEAF)),
)
POD_SPEC = struct(
    containers=keyed_list("name", of=CONTAINER),
    initContainers=keyed_list("name", of=CONTAINER),
    tolerations=TOLERATIONS,
    nodeSelector=LEAF,
    volumes=keyed_list(
        "name", of=struct(name=LEAF, emptyDir=LEAF, configMap=LEAF), strategy="merge,retainKeys"
    ),
)
POD = struct(apiVersion=LEAF, kind=LEAF, metadata=METADATA, spec=POD_SPEC)
DEPLOYMENT = struct(
    apiVersion=LEAF,
    kind=LEAF,
    metadata=METADATA,
    spec=struct(
        replicas=LEAF,
        selector=struct(matchLabels=LEAF),
        template=struct(metadata=METADATA, spec=POD_SPEC),
        strategy=Schema(
            fields={
                "type": LEAF,
                "rollingUpdate": struct(maxSurge=LEAF, maxUnavailable=LEAF),
            },
            patch_strategy="retainKeys",
        ),
    ),
)
SERVICE = struct(
    apiVersion=LEAF,
    kind=LEAF,
    metadata=METADATA,
    spec=struct(
        type=LEAF,
        selector=LEAF,
        ports=keyed_list(
            "port",
            "protocol",
            of=struct(port=LEAF, targetPort=LEAF, protocol=LEAF, name=LEAF, nodePort=LEAF),
        ),
    ),
)


def declared(schema: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    for name, child in schema.fields.items():
        yield f"{path}.{name}", child
        yield from declared(child, f"{path}.{name}")
    if schema.element is not None:
        yield from declared(schema.element, f"{path}[]")


@pytest.mark.parametrize(
    ("kind", "subset"), [("Pod", POD), ("Deployment", DEPLOYMENT), ("Service", SERVICE)]
)
def test_the_subset_matches_the_served_schema(kind: str, subset: Schema) -> None:
    for path, mine in declared(subset):
        served = schema_for(kind)
        for step in path.lstrip(".").replace("[]", ".[]").split("."):
            served = served.items if step == "[]" else served.field(step)
            assert served is not None, f"{kind}{path} is not in apiserver.schema"
        metadata = (mine.patch_strategy, mine.merge_key, mine.list_type, mine.map_keys)
        assert metadata == (
            served.patch_strategy,
            served.merge_key,
            served.list_type,
            served.map_keys,
        ), f"{kind}{path}"
