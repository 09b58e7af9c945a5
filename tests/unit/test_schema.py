"""apiserver/schema.py: unknown-field detection and the patch metadata of each kind."""

import json
import subprocess
import sys
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes.client import models

from apiserver.patch import PatchSchema
from apiserver.schema import (
    NAMED_TYPES,
    PATCH_METADATA,
    TABLE_PATH,
    SchemaNode,
    model_for,
    referenced_model,
    schema_for,
    unknown_fields,
)
from apiserver.schema_table import build_table, render_table
from minikube_py.api.resources import RESOURCES

KINDS = [r.kind for r in RESOURCES]

# The two manifests of /work/shared/seed/kubernetes-service-guide.md, verbatim.
SEED_GUIDE_MANIFESTS = """
apiVersion: v1
kind: Service
metadata:
  name: test-service
spec:
  selector:
    app: test
  type: NodePort # 指定service 类型
  ports:
  - protocol: TCP
    port: 80
    targetPort: 80
    name: test-http
    nodePort: 30000 # 范围：30000-32767
---
kind: Service
apiVersion: v1
metadata:
  name: test-service
  namespace: test
spec:
  type: ExternalName # 类型
  externalName: test.service.com
"""

FULL_MANIFESTS = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web}
  annotations: {deployment.kubernetes.io/revision: "2"}
  finalizers: [example.com/keep]
  ownerReferences:
  - {apiVersion: v1, kind: ConfigMap, name: owner, uid: 1234, controller: true}
spec:
  replicas: 3
  revisionHistoryLimit: 5
  progressDeadlineSeconds: 600
  selector:
    matchLabels: {app: web}
    matchExpressions:
    - {key: tier, operator: In, values: [frontend]}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 25%, maxUnavailable: 1}
  template:
    metadata:
      labels: {app: web, tier: frontend}
    spec:
      serviceAccountName: web
      terminationGracePeriodSeconds: 30
      nodeSelector: {kubernetes.io/os: linux}
      tolerations:
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute,
         tolerationSeconds: 300}
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            podAffinityTerm:
              topologyKey: kubernetes.io/hostname
              labelSelector: {matchLabels: {app: web}}
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: zone, whenUnsatisfiable: ScheduleAnyway,
         labelSelector: {matchLabels: {app: web}}}
      initContainers:
      - name: init
        image: busybox
        command: [sh, -c, "echo ready > /work/ready"]
        volumeMounts: [{name: work, mountPath: /work}]
      containers:
      - name: web
        image: busybox
        imagePullPolicy: IfNotPresent
        args: [httpd, -f, -p, "8080"]
        ports:
        - {name: http, containerPort: 8080, protocol: TCP}
        env:
        - {name: MODE, value: prod}
        - name: POD_IP
          valueFrom: {fieldRef: {fieldPath: status.podIP}}
        - name: LIMIT
          valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}
        envFrom:
        - configMapRef: {name: web-config}
        resources:
          requests: {cpu: 100m, memory: 64Mi}
          limits: {cpu: "1", memory: 128Mi}
        readinessProbe:
          httpGet: {path: /, port: http, scheme: HTTP}
          periodSeconds: 5
        livenessProbe:
          tcpSocket: {port: 8080}
          initialDelaySeconds: 3
        startupProbe:
          exec: {command: [cat, /work/ready]}
        lifecycle:
          preStop: {exec: {command: [sleep, "1"]}}
        securityContext:
          runAsNonRoot: true
          capabilities: {drop: [ALL]}
        volumeMounts:
        - {name: work, mountPath: /work}
        - {name: config, mountPath: /etc/web, readOnly: true}
      volumes:
      - name: work
        emptyDir: {sizeLimit: 1Gi}
      - name: config
        configMap:
          name: web-config
          items: [{key: conf, path: web.conf}]
      - name: token
        projected:
          sources:
          - serviceAccountToken: {path: token, expirationSeconds: 3600}
status:
  observedGeneration: 2
  replicas: 3
  readyReplicas: 3
  conditions:
  - {type: Available, status: "True", reason: MinimumReplicasAvailable,
     lastTransitionTime: "2024-01-01T00:00:00Z", lastUpdateTime: "2024-01-01T00:00:00Z"}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: db}}
  updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 0, maxUnavailable: 1}}
  persistentVolumeClaimRetentionPolicy: {whenDeleted: Retain, whenScaled: Delete}
  template:
    metadata: {labels: {app: db}}
    spec:
      subdomain: db
      containers:
      - name: db
        image: busybox
        ports: [{containerPort: 5432, name: pg}]
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
status: {replicas: 2, readyReplicas: 2, currentRevision: db-1, updateRevision: db-1}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: LoadBalancer
  selector: {app: web}
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10]
  ipFamilies: [IPv4]
  ipFamilyPolicy: SingleStack
  externalTrafficPolicy: Local
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}}
  ports:
  - {name: http, port: 80, targetPort: http, protocol: TCP, nodePort: 30080}
  - {name: dns, port: 53, targetPort: 53, protocol: UDP}
status:
  loadBalancer:
    ingress: [{ip: 192.168.49.200, ipMode: VIP, ports: [{port: 80, protocol: TCP}]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc12
  namespace: shop
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
endpoints:
- addresses: [10.244.1.5]
  conditions: {ready: true, serving: true, terminating: false}
  hostname: web-0
  nodeName: node-1
  zone: a
  targetRef: {kind: Pod, name: web-0, namespace: shop, uid: abc}
  hints: {forZones: [{name: a}]}
ports:
- {name: http, port: 8080, protocol: TCP, appProtocol: http}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: node-1, namespace: kube-node-lease}
spec:
  holderIdentity: node-1
  leaseDurationSeconds: 40
  acquireTime: "2024-01-01T00:00:00.000000Z"
  renewTime: "2024-01-01T00:00:10.000000Z"
  leaseTransitions: 0
---
apiVersion: v1
kind: Pod
metadata:
  name: web-0
  namespace: shop
  managedFields:
  - manager: kubectl
    operation: Apply
    apiVersion: v1
    fieldsType: FieldsV1
    fieldsV1: {"f:spec": {"f:containers": {"k:{\\"name\\":\\"web\\"}": {".": {}}}}}
spec:
  nodeName: node-1
  hostAliases: [{ip: 127.0.0.1, hostnames: [local]}]
  dnsConfig: {nameservers: [10.96.0.10], searches: [shop.svc.cluster.local],
              options: [{name: ndots, value: "5"}]}
  containers: [{name: web, image: busybox, stdin: true, tty: true}]
status:
  phase: Running
  podIP: 10.244.1.5
  podIPs: [{ip: 10.244.1.5}]
  hostIP: 192.168.49.2
  startTime: "2024-01-01T00:00:00Z"
  conditions: [{type: Ready, status: "True"}]
  containerStatuses:
  - name: web
    ready: true
    restartCount: 0
    image: busybox
    imageID: docker://sha256:abc
    containerID: docker://abc
    state: {running: {startedAt: "2024-01-01T00:00:01Z"}}
    lastState: {terminated: {exitCode: 1, reason: Error}}
---
apiVersion: v1
kind: Node
metadata: {name: node-1, labels: {kubernetes.io/hostname: node-1}}
spec:
  podCIDR: 10.244.1.0/24
  podCIDRs: [10.244.1.0/24]
  taints: [{key: node.kubernetes.io/not-ready, effect: NoSchedule}]
status:
  capacity: {cpu: "2", memory: 4Gi, pods: "110"}
  allocatable: {cpu: "2", memory: 4Gi, pods: "110"}
  addresses: [{type: InternalIP, address: 192.168.49.2}, {type: Hostname, address: node-1}]
  conditions:
  - {type: Ready, status: "True", lastHeartbeatTime: "2024-01-01T00:00:00Z"}
  nodeInfo: {kubeletVersion: v1.32.0, osImage: Linux, architecture: amd64,
             containerRuntimeVersion: docker://24, kernelVersion: "6.1", operatingSystem: linux,
             machineID: m, systemUUID: s, bootID: b, kubeProxyVersion: v1.32.0}
  daemonEndpoints: {kubeletEndpoint: {Port: 10250}}
---
apiVersion: v1
kind: Event
metadata: {name: web-0.17a, namespace: shop}
involvedObject: {kind: Pod, name: web-0, namespace: shop}
reason: Scheduled
message: Successfully assigned shop/web-0 to node-1
type: Normal
count: 1
firstTimestamp: "2024-01-01T00:00:00Z"
lastTimestamp: "2024-01-01T00:00:00Z"
eventTime: "2024-01-01T00:00:00.000000Z"
source: {component: scheduler}
reportingComponent: scheduler
reportingInstance: scheduler-1
---
apiVersion: v1
kind: Endpoints
metadata: {name: web, namespace: shop}
subsets:
- addresses: [{ip: 10.244.1.5, targetRef: {kind: Pod, name: web-0}}]
  notReadyAddresses: []
  ports: [{name: http, port: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: shop}
type: Opaque
data: {password: cGFzcw==}
stringData: {user: admin}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config, namespace: shop}
data: {conf: "listen 8080"}
binaryData: {blob: AAE=}
immutable: false
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: web, namespace: shop}
automountServiceAccountToken: false
secrets: [{name: creds}]
imagePullSecrets: [{name: registry}]
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
spec: {finalizers: [kubernetes]}
status: {phase: Active}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web-5d4f, namespace: shop}
spec:
  replicas: 1
  minReadySeconds: 0
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: busybox}]}
status: {replicas: 1, fullyLabeledReplicas: 1, availableReplicas: 1}
"""


def _documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


@pytest.mark.parametrize(
    "doc", _documents(SEED_GUIDE_MANIFESTS) + _documents(FULL_MANIFESTS), ids=lambda d: d["kind"]
)
def test_valid_manifests_have_no_unknown_fields(doc: dict[str, Any]) -> None:
    assert unknown_fields(doc["kind"], doc) == []


def test_full_manifests_cover_every_kind() -> None:
    assert {doc["kind"] for doc in _documents(FULL_MANIFESTS)} == set(KINDS)


def test_unknown_fields_at_every_depth() -> None:
    deployment = _documents(FULL_MANIFESTS)[0]
    deployment["colour"] = "blue"
    deployment["metadata"]["foo"] = 1
    deployment["spec"]["replica"] = 2
    pod_spec = deployment["spec"]["template"]["spec"]
    pod_spec["containers"][0]["imagee"] = "busybox"
    pod_spec["containers"][0]["ports"][0]["containerPortt"] = 80
    pod_spec["containers"][0]["resources"]["limit"] = {"cpu": "1"}
    pod_spec["volumes"][1]["configMap"]["items"][0]["mod"] = 420
    assert unknown_fields("Deployment", deployment) == [
        # document order: keys added above come last in their own object
        "metadata.foo",
        "spec.template.spec.containers[0].ports[0].containerPortt",
        "spec.template.spec.containers[0].resources.limit",
        "spec.template.spec.containers[0].imagee",
        "spec.template.spec.volumes[1].configMap.items[0].mod",
        "spec.replica",
        "colour",
    ]


def test_unknown_fields_in_a_pod() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labelz": {}},
        "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "imagee": "x"}]},
    }
    assert unknown_fields("Pod", pod) == ["metadata.labelz", "spec.containers[1].imagee"]


def test_free_form_and_map_values_accept_anything() -> None:
    pod = {
        "metadata": {
            "labels": {"any-key": "v"},
            "managedFields": [{"fieldsV1": {"f:metadata": {"f:whatever": {}}}}],
        },
        "spec": {"containers": [{"name": "a", "ports": [{"containerPort": 1}]}]},
    }
    assert unknown_fields("Pod", pod) == []


def test_values_of_the_wrong_type_are_not_unknown_fields() -> None:
    # Type errors belong to validation; the walk only reports names it cannot place.
    pod = {"spec": {"containers": "not-a-list", "volumes": [1, None]}, "metadata": []}
    assert unknown_fields("Pod", pod) == []


def test_unknown_kind_is_an_error() -> None:
    with pytest.raises(KeyError):
        unknown_fields("Widget", {})


def _at(kind: str, *path: str) -> SchemaNode:
    node: SchemaNode | None = schema_for(kind)
    for step in path:
        assert node is not None, path
        node = node.items if step == "[]" else node.field(step)
    assert node is not None, path
    return node


POD_SPEC = ("spec", "template", "spec")


@pytest.mark.parametrize(
    ("kind", "path", "strategy", "key", "list_type", "map_keys"),
    [
        ("Pod", ("spec", "containers"), "merge", "name", "map", ("name",)),
        ("Pod", ("spec", "initContainers"), "merge", "name", "map", ("name",)),
        ("Pod", ("spec", "ephemeralContainers"), "merge", "name", "map", ("name",)),
        ("Pod", ("spec", "volumes"), "merge,retainKeys", "name", "map", ("name",)),
        ("Pod", ("spec", "imagePullSecrets"), "merge", "name", "map", ("name",)),
        ("Pod", ("spec", "hostAliases"), "merge", "ip", "map", ("ip",)),
        (
            "Pod",
            ("spec", "topologySpreadConstraints"),
            "merge",
            "topologyKey",
            "map",
            ("topologyKey", "whenUnsatisfiable"),
        ),
        ("Pod", ("spec", "tolerations"), "", None, "", ()),
        (
            "Pod",
            ("spec", "containers", "[]", "ports"),
            "merge",
            "containerPort",
            "map",
            ("containerPort", "protocol"),
        ),
        ("Pod", ("spec", "containers", "[]", "env"), "merge", "name", "map", ("name",)),
        (
            "Pod",
            ("spec", "containers", "[]", "volumeMounts"),
            "merge",
            "mountPath",
            "map",
            ("mountPath",),
        ),
        (
            "Pod",
            ("spec", "containers", "[]", "volumeDevices"),
            "merge",
            "devicePath",
            "map",
            ("devicePath",),
        ),
        ("Pod", ("spec", "containers", "[]", "resizePolicy"), "", None, "", ()),
        ("Pod", ("spec", "containers", "[]", "args"), "", None, "", ()),
        ("Pod", ("status", "conditions"), "merge", "type", "map", ("type",)),
        ("Pod", ("status", "podIPs"), "merge", "ip", "map", ("ip",)),
        ("Pod", ("metadata", "finalizers"), "merge", None, "set", ()),
        ("Pod", ("metadata", "ownerReferences"), "merge", "uid", "map", ("uid",)),
        ("Service", ("spec", "ports"), "merge", "port", "map", ("port", "protocol")),
        ("Node", ("status", "conditions"), "merge", "type", "map", ("type",)),
        ("Node", ("status", "addresses"), "merge", "type", "map", ("type",)),
        ("Node", ("spec", "podCIDRs"), "merge", None, "set", ()),
        ("Deployment", ("spec", "strategy"), "retainKeys", None, "", ()),
        ("Deployment", ("status", "conditions"), "merge", "type", "map", ("type",)),
        ("Deployment", (*POD_SPEC, "containers"), "merge", "name", "map", ("name",)),
        (
            "Deployment",
            (*POD_SPEC, "containers", "[]", "ports"),
            "merge",
            "containerPort",
            "map",
            ("containerPort", "protocol"),
        ),
        ("ReplicaSet", ("status", "conditions"), "merge", "type", "map", ("type",)),
        ("StatefulSet", ("status", "conditions"), "merge", "type", "map", ("type",)),
        ("StatefulSet", (*POD_SPEC, "volumes"), "merge,retainKeys", "name", "map", ("name",)),
        ("ServiceAccount", ("secrets",), "merge", "name", "map", ("name",)),
        ("EndpointSlice", ("endpoints", "[]", "addresses"), "", None, "set", ()),
        ("EndpointSlice", ("ports",), "", None, "", ()),
    ],
)
def test_patch_metadata(
    kind: str,
    path: tuple[str, ...],
    strategy: str,
    key: str | None,
    list_type: str,
    map_keys: tuple[str, ...],
) -> None:
    node: PatchSchema = _at(kind, *path)
    assert (node.patch_strategy, node.merge_key, node.list_type, node.map_keys) == (
        strategy,
        key,
        list_type,
        map_keys,
    )


def test_navigation() -> None:
    pod = schema_for("Pod")
    assert pod.type == "object" and pod.model == "V1Pod"
    containers = _at("Pod", "spec", "containers")
    assert containers.type == "array" and containers.items is not None
    assert containers.items.model == "V1Container"
    assert containers.field("name") is None  # lists are entered through items
    labels = _at("Pod", "metadata", "labels")
    assert labels.type == "map" and labels.field("any-key") == labels.element
    assert labels.items is None
    assert _at("Pod", "metadata", "labels", "x").type == "string"
    assert _at("Pod", "spec", "containers", "[]", "name").field("x") is None
    assert "containers" in _at("Pod", "spec").required
    assert schema_for("Pod") is schema_for("Pod")


@pytest.mark.parametrize(
    ("kind", "path", "named"),
    [
        ("Service", ("spec", "ports", "[]", "targetPort"), "IntOrString"),
        ("Deployment", ("spec", "strategy", "rollingUpdate", "maxSurge"), "IntOrString"),
        ("Pod", ("spec", "containers", "[]", "resources", "limits", "cpu"), "Quantity"),
        ("Node", ("status", "capacity", "pods"), "Quantity"),
        ("Lease", ("spec", "renewTime"), "MicroTime"),
        ("Event", ("eventTime",), "MicroTime"),
        ("Event", ("lastTimestamp",), "Time"),
        ("Pod", ("metadata", "creationTimestamp"), "Time"),
        ("Pod", ("metadata", "managedFields", "[]", "fieldsV1"), "FieldsV1"),
    ],
)
def test_named_apimachinery_types(kind: str, path: tuple[str, ...], named: str) -> None:
    assert _at(kind, *path).named == named


def _model_fields_reachable() -> set[tuple[str, str]]:
    seen: set[str] = set()
    pairs: set[tuple[str, str]] = set()

    def walk(node: SchemaNode) -> None:
        if node.element is not None:
            walk(node.element)
        if node.type != "object" or node.model in seen:
            return
        seen.add(node.model)
        for key, child in node.fields.items():
            pairs.add((node.model, key))
            walk(child)

    for kind in KINDS:
        walk(schema_for(kind))
    return pairs


def test_tables_name_only_real_fields_of_served_kinds() -> None:
    reachable = _model_fields_reachable() | {("V1WatchEvent", "object")}
    assert set(PATCH_METADATA) - reachable == set()
    assert set(NAMED_TYPES) - reachable == set()


def test_model_table_is_what_the_installed_client_says() -> None:
    """schema_models.json is generated: regenerate it when the client changes."""
    assert json.loads(TABLE_PATH.read_text()) == build_table()
    assert TABLE_PATH.read_text() == render_table(build_table())


def test_referenced_model_sees_through_lists_and_maps() -> None:
    assert referenced_model("List[V1Container]") == "V1Container"
    assert referenced_model("Dict[str, List[V1Toleration]]") == "V1Toleration"
    assert referenced_model("dict(str, str)") is None
    assert referenced_model("datetime") is None


def test_serving_does_not_import_the_client() -> None:
    code = (
        "import sys; from apiserver import openapi, schema; "
        "schema.unknown_fields('Pod', {'spec': {}}); openapi.openapi_v2(); "
        "print('kubernetes' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_every_kind_has_a_client_model() -> None:
    for kind in KINDS:
        model = getattr(models, model_for(kind))
        assert set(model.attribute_map.values()) >= {"apiVersion", "kind", "metadata"}


# --- property: generated instances of the schema ---------------------------------

_SCALARS = {
    "string": st.text(max_size=5),
    "integer": st.integers(-5, 5),
    "number": st.floats(allow_nan=False),
    "boolean": st.booleans(),
    "any": st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
}


def _instance(data: st.DataObject, node: SchemaNode, path: str, objects: list[tuple]) -> Any:
    """A random value valid for `node`, recording every object (path, dict) it makes."""
    if node.type == "object":
        fields = node.fields
        keys = data.draw(
            st.lists(st.sampled_from(sorted(fields)), max_size=3, unique=True)
            if fields
            else st.just([])
        )
        value: dict[str, Any] = {}
        objects.append((path, value))
        for key in keys:
            value[key] = _instance(data, fields[key], f"{path}.{key}" if path else key, objects)
        return value
    if node.type == "array":
        assert node.element is not None
        size = data.draw(st.integers(0, 2))
        return [_instance(data, node.element, f"{path}[{i}]", objects) for i in range(size)]
    if node.type == "map":
        assert node.element is not None
        keys = data.draw(st.lists(st.text(max_size=4), max_size=2, unique=True))
        return {key: _instance(data, node.element, f"{path}.{key}", objects) for key in keys}
    return data.draw(_SCALARS[node.type])


@settings(max_examples=60, deadline=None)
@given(data=st.data(), kind=st.sampled_from(KINDS))
def test_generated_instances_are_known_and_an_added_field_is_found(
    data: st.DataObject, kind: str
) -> None:
    objects: list[tuple[str, dict[str, Any]]] = []
    instance = _instance(data, schema_for(kind), "", objects)
    assert unknown_fields(kind, instance) == []

    path, target = data.draw(st.sampled_from(objects))
    target["zz-not-a-field"] = True
    assert unknown_fields(kind, instance) == [
        f"{path}.zz-not-a-field" if path else "zz-not-a-field"
    ]
