# ruff: noqa: E501  (Kubernetes messages are compared whole, one per line)
"""Validation: every rule with the exact message kube-apiserver returns for it, and
valid objects (the seed guide's manifests among them) that must pass."""

import copy
from typing import Any

import pytest
import yaml

from minikube_py.api.defaults import apply_defaults
from minikube_py.api.types import Obj
from minikube_py.api.validation import FieldError, status_message, validate

# The two manifests of the seed Service guide, verbatim.
NODE_PORT_MANIFEST = """
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
"""
EXTERNAL_NAME_MANIFEST = """
kind: Service
apiVersion: v1
metadata:
  name: test-service
  namespace: test
spec:
  type: ExternalName # 类型
  externalName: test.service.com
"""


def as_created(kind: str, obj: Obj, namespace: str = "default") -> Obj:
    """What the registry validates: the request's namespace filled in, then defaults."""
    obj = copy.deepcopy(obj)
    if kind not in ("Namespace", "Node"):
        obj.setdefault("metadata", {}).setdefault("namespace", namespace)
    apply_defaults(kind, obj)
    return obj


def messages(kind: str, obj: Obj, old: Obj | None = None, **kwargs: Any) -> list[str]:
    return [str(e) for e in validate(kind, obj, old, **kwargs)]


def pod(**spec: Any) -> Obj:
    base = {"containers": [{"name": "app", "image": "nginx:1.27"}]}
    return as_created("Pod", {"metadata": {"name": "web"}, "spec": {**base, **spec}})


def container(**fields: Any) -> Obj:
    return pod(containers=[{"name": "app", "image": "nginx:1.27", **fields}])


def service(**spec: Any) -> Obj:
    base = {"selector": {"app": "web"}, "ports": [{"port": 80}]}
    return as_created("Service", {"metadata": {"name": "web"}, "spec": {**base, **spec}})


def deployment(kind: str = "Deployment", **spec: Any) -> Obj:
    base = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
        },
    }
    return as_created(kind, {"metadata": {"name": "web"}, "spec": {**base, **spec}})


# --- valid objects -----------------------------------------------------------------------


def test_seed_manifests_are_valid() -> None:
    for text in (NODE_PORT_MANIFEST, EXTERNAL_NAME_MANIFEST):
        manifest = yaml.safe_load(text)
        assert validate("Service", as_created("Service", manifest)) == []


@pytest.mark.parametrize(
    ("kind", "obj"),
    [
        ("Pod", pod()),
        ("Service", service()),
        ("Service", service(clusterIP="None", ports=[])),
        ("Service", service(type="LoadBalancer", loadBalancerIP="192.168.49.200")),
        ("Deployment", deployment()),
        ("ReplicaSet", deployment("ReplicaSet")),
        ("StatefulSet", deployment("StatefulSet", serviceName="db")),
        ("Namespace", as_created("Namespace", {"metadata": {"name": "team-a"}})),
        (
            "ConfigMap",
            as_created("ConfigMap", {"metadata": {"name": "c"}, "data": {"app.conf": "x"}}),
        ),
        ("Secret", as_created("Secret", {"metadata": {"name": "s"}, "data": {"password": "eA=="}})),
        ("ServiceAccount", as_created("ServiceAccount", {"metadata": {"name": "default"}})),
        (
            "Lease",
            as_created(
                "Lease",
                {
                    "metadata": {"name": "l"},
                    "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15},
                },
            ),
        ),
        (
            "Node",
            as_created(
                "Node",
                {
                    "metadata": {"name": "node-1"},
                    "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]},
                },
            ),
        ),
        (
            "EndpointSlice",
            as_created(
                "EndpointSlice",
                {
                    "metadata": {"name": "web-abc"},
                    "addressType": "IPv4",
                    "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": True}}],
                    "ports": [{"name": "http", "port": 80}],
                },
            ),
        ),
        (
            "Endpoints",
            as_created(
                "Endpoints",
                {
                    "metadata": {"name": "web"},
                    "subsets": [{"addresses": [{"ip": "10.244.1.5"}], "ports": [{"port": 80}]}],
                },
            ),
        ),
        (
            "Event",
            as_created(
                "Event",
                {
                    "metadata": {"name": "web.1"},
                    "involvedObject": {"kind": "Pod", "namespace": "default"},
                },
            ),
        ),
    ],
)
def test_valid_objects_pass(kind: str, obj: Obj) -> None:
    assert validate(kind, obj) == []


# --- metadata ----------------------------------------------------------------------------

LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)


def test_name_is_required() -> None:
    obj = pod()
    del obj["metadata"]["name"]
    assert messages("Pod", obj) == [
        "metadata.name: Required value: name or generateName is required"
    ]
    obj["metadata"]["generateName"] = "web-"
    # the registry generates the name before validating: without one it is still due
    assert messages("Pod", obj) == [
        "metadata.name: Required value: name or generateName is required"
    ]
    obj["metadata"]["name"] = "web-x7k2p"
    assert validate("Pod", obj) == []


def test_pod_name_is_a_subdomain() -> None:
    obj = pod()
    obj["metadata"]["name"] = "Web_1"
    assert messages("Pod", obj) == [f'metadata.name: Invalid value: "Web_1": {SUBDOMAIN_MSG}']
    obj["metadata"]["name"] = "web.v1"
    assert validate("Pod", obj) == []


def test_service_name_is_a_dns1035_label() -> None:
    obj = service()
    obj["metadata"]["name"] = "1web"
    assert messages("Service", obj) == [f'metadata.name: Invalid value: "1web": {DNS1035_MSG}']


def test_namespace_name_is_a_label_and_length_is_checked() -> None:
    ns = as_created("Namespace", {"metadata": {"name": "a.b"}})
    assert messages("Namespace", ns) == [f'metadata.name: Invalid value: "a.b": {LABEL_MSG}']
    long = as_created("Namespace", {"metadata": {"name": "a" * 64}})
    too_long = f'Invalid value: "{"a" * 64}": must be no more than 63 characters'
    # the name also becomes the kubernetes.io/metadata.name label, which fails the same way
    assert messages("Namespace", long) == [
        f"metadata.name: {too_long}",
        f"metadata.labels: {too_long}",
    ]


def test_generate_name_may_end_with_a_dash_but_must_be_valid() -> None:
    obj = pod()
    obj["metadata"] = {"generateName": "Bad-", "name": "bad-1", "namespace": "default"}
    assert messages("Pod", obj) == [
        f'metadata.generateName: Invalid value: "Bad-": {SUBDOMAIN_MSG}'
    ]


def test_namespace_required_for_namespaced_kinds_and_forbidden_otherwise() -> None:
    obj = pod()
    del obj["metadata"]["namespace"]
    assert messages("Pod", obj) == ["metadata.namespace: Required value"]
    node = as_created("Node", {"metadata": {"name": "n", "namespace": "default"}})
    assert messages("Node", node) == ["metadata.namespace: Forbidden: not allowed on this type"]


def test_label_syntax_and_sizes() -> None:
    obj = pod()
    obj["metadata"]["labels"] = {"bad key": "ok", "ok": "bad value", "a/b/c": "x", "v": "x" * 64}
    assert messages("Pod", obj) == [
        'metadata.labels: Invalid value: "bad key": name part must consist of alphanumeric '
        "characters, '-', '_' or '.', and must start and end with an alphanumeric character "
        "(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        'metadata.labels: Invalid value: "bad value": a valid label must be an empty string or '
        "consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
        "alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
        "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        'metadata.labels: Invalid value: "a/b/c": a qualified name must consist of alphanumeric '
        "characters, '-', '_' or '.', and must start and end with an alphanumeric character "
        "(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and "
        "'/' (e.g. 'example.com/MyName')",
        f'metadata.labels: Invalid value: "{"x" * 64}": must be no more than 63 characters',
    ]


def test_label_key_name_parts() -> None:
    obj = pod()
    obj["metadata"]["labels"] = {"example.com/": "x", "/app": "x", "a\n": "x"}
    assert messages("Pod", obj) == [
        'metadata.labels: Invalid value: "example.com/": name part must be non-empty',
        'metadata.labels: Invalid value: "example.com/": name part must consist of alphanumeric '
        "characters, '-', '_' or '.', and must start and end with an alphanumeric character "
        "(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        'metadata.labels: Invalid value: "/app": prefix part must be non-empty',
        'metadata.labels: Invalid value: "a\\n": name part must consist of alphanumeric '
        "characters, '-', '_' or '.', and must start and end with an alphanumeric character "
        "(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
    ]


def test_label_key_prefix_must_be_a_subdomain() -> None:
    obj = pod()
    obj["metadata"]["labels"] = {"Example.com/app": "x", "example.com/app": "x"}
    assert messages("Pod", obj) == [
        f'metadata.labels: Invalid value: "Example.com/app": prefix part {SUBDOMAIN_MSG}'
    ]


def test_annotations_keys_and_total_size() -> None:
    obj = pod()
    obj["metadata"]["annotations"] = {"MixedCase/Key": "ok", "big": "x" * 262144}
    assert messages("Pod", obj) == [
        "metadata.annotations: Too long: may not be more than 262144 bytes"
    ]
    obj["metadata"]["annotations"] = {"-bad": "x"}
    [error] = validate("Pod", obj)
    assert error.reason == "FieldValueInvalid" and error.field == "metadata.annotations"


# --- Pod -----------------------------------------------------------------------------------


def test_containers_required() -> None:
    assert messages("Pod", pod(containers=[])) == ["spec.containers: Required value"]


def test_container_names_required_valid_and_unique() -> None:
    obj = pod(
        containers=[
            {"image": "a"},
            {"name": "App", "image": "a"},
            {"name": "x", "image": "a"},
            {"name": "x", "image": "a"},
        ]
    )
    assert messages("Pod", obj) == [
        "spec.containers[0].name: Required value",
        f'spec.containers[1].name: Invalid value: "App": {LABEL_MSG}',
        'spec.containers[3].name: Duplicate value: "x"',
    ]


def test_init_and_app_container_names_share_one_namespace() -> None:
    obj = pod(initContainers=[{"name": "app", "image": "busybox"}])
    assert messages("Pod", obj) == ['spec.containers[0].name: Duplicate value: "app"']


def test_image_required() -> None:
    assert messages("Pod", pod(containers=[{"name": "a"}])) == [
        "spec.containers[0].image: Required value"
    ]
    assert messages("Pod", pod(containers=[{"name": "a", "image": " nginx"}])) == [
        'spec.containers[0].image: Invalid value: " nginx": must not have leading or trailing whitespace'
    ]
    template = deployment()
    template["spec"]["template"]["spec"]["containers"][0]["image"] = " "
    assert validate("Deployment", template) == []


def test_container_ports() -> None:
    obj = container(
        ports=[
            {"containerPort": 70000},
            {"containerPort": 0},
            {"containerPort": 80, "protocol": "HTTP"},
            {"containerPort": 81, "hostPort": -1},
        ]
    )
    assert messages("Pod", obj) == [
        "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        "spec.containers[0].ports[1].containerPort: Required value",
        'spec.containers[0].ports[2].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"',
        "spec.containers[0].ports[3].hostPort: Invalid value: -1: must be between 1 and 65535, inclusive",
    ]
    for protocol in ("TCP", "UDP", "SCTP"):
        assert validate("Pod", container(ports=[{"containerPort": 53, "protocol": protocol}])) == []


def test_container_port_names_are_iana_service_names() -> None:
    obj = container(
        ports=[
            {"containerPort": 80, "name": "http-web-server-1"},
            {"containerPort": 81, "name": "a--b"},
        ]
    )
    assert messages("Pod", obj) == [
        'spec.containers[0].ports[0].name: Invalid value: "http-web-server-1": must be no more than 15 characters',
        'spec.containers[0].ports[1].name: Invalid value: "a--b": must not contain consecutive hyphens',
    ]


def test_restart_policy() -> None:
    assert messages("Pod", pod(restartPolicy="Sometimes")) == [
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"'
    ]


def test_resource_quantities_parse() -> None:
    obj = container(
        resources={"limits": {"cpu": "1x", "memory": "-1Gi"}, "requests": {"cpu": "2", "gpu": "1"}}
    )
    assert messages("Pod", obj) == [
        'spec.containers[0].resources.limits[cpu]: Invalid value: "1x": quantities must match '
        "the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        'spec.containers[0].resources.limits[memory]: Invalid value: "-1Gi": must be greater than or equal to 0',
        'spec.containers[0].resources.requests[gpu]: Invalid value: "gpu": must be a standard resource type or fully qualified',
        'spec.containers[0].resources.requests[gpu]: Invalid value: "gpu": must be a standard resource for containers',
        # requests default to limits, so the bad memory limit is a bad request too
        'spec.containers[0].resources.requests[memory]: Invalid value: "-1Gi": must be greater than or equal to 0',
    ]
    over = container(resources={"limits": {"cpu": "500m"}, "requests": {"cpu": "1"}})
    assert messages("Pod", over) == [
        'spec.containers[0].resources.requests: Invalid value: "1": must be less than or equal to cpu limit of 500m'
    ]
    extended = container(
        resources={"limits": {"example.com/gpu": "2"}, "requests": {"example.com/gpu": "1"}}
    )
    assert messages("Pod", extended) == [
        'spec.containers[0].resources.requests: Invalid value: "1": must be equal to example.com/gpu limit of 2'
    ]
    pods = container(resources={"limits": {"pods": "1"}})
    assert [m for m in messages("Pod", pods) if "limits" in m] == [
        'spec.containers[0].resources.limits[pods]: Invalid value: "pods": must be a standard resource for containers'
    ]
    ok = container(
        resources={
            "limits": {"cpu": "1", "memory": "1Gi", "example.com/foo": "2"},
            "requests": {"cpu": "100m", "memory": "512Mi"},
        }
    )
    assert validate("Pod", ok) == []


def test_probes_need_exactly_one_handler() -> None:
    none = container(livenessProbe={"periodSeconds": 5})
    assert messages("Pod", none) == [
        "spec.containers[0].livenessProbe: Required value: must specify a handler type"
    ]
    two = container(readinessProbe={"httpGet": {"port": 80}, "tcpSocket": {"port": 80}})
    assert messages("Pod", two) == [
        "spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type"
    ]
    ok = container(startupProbe={"exec": {"command": ["true"]}})
    assert validate("Pod", ok) == []


def test_probe_fields() -> None:
    obj = container(
        livenessProbe={
            "tcpSocket": {"port": "not_a_name"},
            "successThreshold": 2,
            "initialDelaySeconds": -1,
        }
    )
    assert messages("Pod", obj) == [
        'spec.containers[0].livenessProbe.tcpSocket.port: Invalid value: "not_a_name": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)',
        "spec.containers[0].livenessProbe.initialDelaySeconds: Invalid value: -1: must be greater than or equal to 0",
        "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
    ]
    assert (
        validate(
            "Pod", container(readinessProbe={"httpGet": {"port": "http"}, "successThreshold": 3})
        )
        == []
    )


def test_pod_update_allows_only_the_mutable_fields() -> None:
    old = pod()
    old["metadata"]["uid"] = "u1"
    updated = copy.deepcopy(old)
    updated["spec"]["containers"][0]["image"] = "nginx:1.28"
    updated["spec"]["activeDeadlineSeconds"] = 60
    updated["spec"]["tolerations"].append({"key": "k", "operator": "Exists"})
    updated["metadata"]["labels"] = {"changed": "yes"}
    assert validate("Pod", updated, old) == []

    restart = copy.deepcopy(old)
    restart["spec"]["restartPolicy"] = "Never"
    [error] = validate("Pod", restart, old)
    assert error.field == "spec" and error.reason == "FieldValueForbidden"
    assert error.message.startswith(
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`"
    )
    bound = copy.deepcopy(old)
    bound["spec"]["nodeName"] = "node-1"  # only the binding subresource may do this
    assert [e.field for e in validate("Pod", bound, old)] == ["spec"]
    removed = copy.deepcopy(old)
    removed["spec"]["tolerations"] = []
    assert [e.field for e in validate("Pod", removed, old)] == ["spec"]


def test_active_deadline_may_be_shortened_but_not_lifted() -> None:
    old = pod(activeDeadlineSeconds=60)
    shorter = pod(activeDeadlineSeconds=30)
    assert validate("Pod", shorter, old) == []
    longer = pod(activeDeadlineSeconds=120)
    assert messages("Pod", longer, old) == [
        "spec.activeDeadlineSeconds: Invalid value: 120: must be less than or equal to previous value"
    ]
    assert messages("Pod", pod(), old) == [
        "spec.activeDeadlineSeconds: Invalid value: null: must not update from a positive integer to nil value"
    ]


def test_metadata_identity_is_immutable() -> None:
    old = pod()
    old["metadata"]["uid"] = "u1"
    new = copy.deepcopy(old)
    new["metadata"]["name"] = "other"
    new["metadata"]["uid"] = "u2"
    assert messages("Pod", new, old) == [
        'metadata.name: Invalid value: "other": field is immutable',
        'metadata.uid: Invalid value: "u2": field is immutable',
    ]


# --- Service ----------------------------------------------------------------------------------


def test_service_type_values() -> None:
    assert messages("Service", service(type="Internal")) == [
        'spec.type: Unsupported value: "Internal": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"',
        # kube defaults internalTrafficPolicy only for the known proxied types
        "spec.internalTrafficPolicy: Required value",
    ]


def test_ports_required_except_headless_and_external_name() -> None:
    assert messages("Service", service(ports=[])) == ["spec.ports: Required value"]
    assert validate("Service", service(ports=[], clusterIP="None")) == []
    assert (
        validate(
            "Service",
            as_created(
                "Service",
                {
                    "metadata": {"name": "x"},
                    "spec": {"type": "ExternalName", "externalName": "db.example.com."},
                },
            ),
        )
        == []
    )


def test_service_port_numbers_and_protocols() -> None:
    obj = service(
        ports=[
            {"port": 70000, "name": "a"},
            {"port": 0, "name": "b"},
            {"port": 53, "name": "c", "protocol": "ICMP"},
        ]
    )
    assert messages("Service", obj) == [
        "spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
        "spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        "spec.ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        "spec.ports[1].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
        'spec.ports[2].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"',
    ]


def test_status_message_matches_kube() -> None:
    obj = service(ports=[{"port": 0, "targetPort": 8080}])
    errors = validate("Service", obj)
    assert status_message("Service", "web", errors) == (
        'Service "web" is invalid: spec.ports[0].port: Invalid value: 0: must be between 1 and '
        "65535, inclusive"
    )
    two = validate(
        "Service", service(ports=[{"port": 0, "targetPort": 1}, {"port": 2, "targetPort": 2}])
    )
    assert status_message("Service", "web", two) == (
        'Service "web" is invalid: [spec.ports[0].name: Required value, spec.ports[0].port: '
        "Invalid value: 0: must be between 1 and 65535, inclusive, spec.ports[1].name: Required value]"
    )
    assert two[0] == FieldError("FieldValueRequired", "spec.ports[0].name", "Required value")
    assert status_message("Service", "web", []) == 'Service "web" is invalid'
    repeated = [FieldError("FieldValueRequired", "spec.x", "Required value")] * 2
    assert (
        status_message("Service", "web", repeated)
        == 'Service "web" is invalid: spec.x: Required value'
    )


def test_status_message_qualifies_kinds_of_a_group() -> None:
    errors = validate("Deployment", deployment(replicas=-1))
    assert status_message("Deployment", "web", errors) == (
        'Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0'
    )


def test_port_names_unique_and_required_when_several() -> None:
    obj = service(
        ports=[
            {"port": 80, "name": "http"},
            {"port": 81, "name": "http"},
            {"port": 82, "name": "Web"},
        ]
    )
    assert messages("Service", obj) == [
        'spec.ports[1].name: Duplicate value: "http"',
        f'spec.ports[2].name: Invalid value: "Web": {LABEL_MSG}',
    ]


def test_target_port_is_a_number_or_iana_name() -> None:
    assert validate("Service", service(ports=[{"port": 80, "targetPort": "http"}])) == []
    assert messages("Service", service(ports=[{"port": 80, "targetPort": "-http"}])) == [
        'spec.ports[0].targetPort: Invalid value: "-http": must not begin or end with a hyphen'
    ]
    assert messages("Service", service(ports=[{"port": 80, "targetPort": "1234"}])) == [
        'spec.ports[0].targetPort: Invalid value: "1234": must contain at least one letter (a-z)'
    ]


def test_node_ports_range_and_type() -> None:
    node_port = service(type="NodePort", ports=[{"port": 80, "nodePort": 40000}])
    assert messages("Service", node_port) == [
        "spec.ports[0].nodePort: Invalid value: 40000: provided port is not in the valid range. "
        "The range of valid ports is 30000-32767"
    ]
    assert validate("Service", node_port, node_port_range=(30000, 40000)) == []
    cluster_ip = service(ports=[{"port": 80, "nodePort": 30080}])
    assert messages("Service", cluster_ip) == [
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
    ]
    dup = service(
        type="LoadBalancer",
        ports=[
            {"port": 80, "name": "a", "nodePort": 30080},
            {"port": 81, "name": "b", "nodePort": 30080},
        ],
    )
    assert messages("Service", dup) == ["spec.ports[1].nodePort: Duplicate value: 30080"]


def test_headless_cannot_be_node_port_or_load_balancer() -> None:
    for type_ in ("NodePort", "LoadBalancer"):
        obj = service(type=type_, clusterIP="None")
        assert messages("Service", obj) == [
            f"spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for {type_} services"
        ]


def test_cluster_ip_format() -> None:
    assert messages("Service", service(clusterIP="10.96.0.300")) == [
        'spec.clusterIPs[0]: Invalid value: "10.96.0.300": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'
    ]


def test_external_name_rules() -> None:
    def ext(**spec: Any) -> Obj:
        return as_created(
            "Service", {"metadata": {"name": "x"}, "spec": {"type": "ExternalName", **spec}}
        )

    assert messages("Service", ext()) == ["spec.externalName: Required value"]
    assert messages("Service", ext(externalName="Bad_Name.com")) == [
        f'spec.externalName: Invalid value: "Bad_Name.com": {SUBDOMAIN_MSG}'
    ]
    assert messages("Service", ext(externalName="a.com", clusterIP="10.96.0.5")) == [
        "spec.clusterIPs: Forbidden: may not be set for ExternalName services"
    ]


def test_session_affinity() -> None:
    assert messages("Service", service(sessionAffinity="Cookie")) == [
        'spec.sessionAffinity: Unsupported value: "Cookie": supported values: "ClientIP", "None"'
    ]
    too_long = service(
        sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 86401}}
    )
    assert messages("Service", too_long) == [
        "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 86401: must be greater than 0 and less than 86400"
    ]
    assert validate("Service", service(sessionAffinity="ClientIP")) == []


def test_external_traffic_policy_only_for_externally_accessible() -> None:
    assert messages("Service", service(externalTrafficPolicy="Local")) == [
        'spec.externalTrafficPolicy: Invalid value: "Local": may only be set for externally-accessible services'
    ]
    assert validate("Service", service(type="NodePort", externalTrafficPolicy="Local")) == []
    assert (
        validate("Service", service(externalIPs=["192.168.49.9"], externalTrafficPolicy="Local"))
        == []
    )
    assert messages("Service", service(type="NodePort", externalTrafficPolicy="Nearest")) == [
        'spec.externalTrafficPolicy: Unsupported value: "Nearest": supported values: "Cluster", "Local"'
    ]


def test_load_balancer_ip() -> None:
    assert messages("Service", service(type="LoadBalancer", loadBalancerIP="lb.local")) == [
        'spec.loadBalancerIP: Invalid value: "lb.local": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'
    ]
    assert messages("Service", service(loadBalancerIP="192.168.49.200")) == [
        "spec.loadBalancerIP: Forbidden: may only be used when `type` is 'LoadBalancer'"
    ]


def test_service_selector_labels() -> None:
    [error] = validate("Service", service(selector={"app": "a b"}))
    assert error.field == "spec.selector"


def test_cluster_ip_immutable_except_to_or_from_external_name() -> None:
    old = service(clusterIP="10.96.0.10")
    new = copy.deepcopy(old)
    new["spec"]["clusterIP"] = new["spec"]["clusterIPs"][0] = "10.96.0.11"
    assert messages("Service", new, old) == [
        'spec.clusterIPs[0]: Invalid value: "10.96.0.11": may not change once set'
    ]
    external = as_created(
        "Service",
        {"metadata": {"name": "web"}, "spec": {"type": "ExternalName", "externalName": "a.com"}},
    )
    assert validate("Service", external, old) == []
    assert validate("Service", old, external) == []
    # leaving the allocated IPs out of an update keeps them
    omitted = copy.deepcopy(old)
    del omitted["spec"]["clusterIP"], omitted["spec"]["clusterIPs"]
    assert validate("Service", omitted, old) == []


# --- workloads -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet", "StatefulSet"])
def test_selector_required_and_matching(kind: str) -> None:
    missing = deployment(kind)
    del missing["spec"]["selector"]
    assert messages(kind, missing) == ["spec.selector: Required value"]
    mismatch = deployment(kind, selector={"matchLabels": {"app": "db"}})
    assert messages(kind, mismatch) == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
        "`selector` does not match template `labels`"
    ]
    empty = deployment(kind, selector={})
    assert messages(kind, empty) == [
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
        f"MatchExpressions:[]v1.LabelSelectorRequirement(nil)}}: empty selector is invalid for {kind.lower()}"
    ]


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet", "StatefulSet"])
def test_replicas_and_template_restart_policy(kind: str) -> None:
    obj = deployment(kind, replicas=-1)
    obj["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert messages(kind, obj) == [
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"',
    ]


def test_template_pod_spec_is_validated() -> None:
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"][0]["image"] = ""
    assert messages("Deployment", obj) == ["spec.template.spec.containers[0].image: Required value"]


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet"])
def test_selector_is_immutable(kind: str) -> None:
    old = deployment(kind)
    new = deployment(kind, selector={"matchLabels": {"app": "web", "tier": "fe"}})
    new["spec"]["template"]["metadata"]["labels"]["tier"] = "fe"
    assert messages(kind, new, old) == [
        'spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web", '
        '"tier":"fe"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable'
    ]
    scaled = copy.deepcopy(old)
    scaled["spec"]["replicas"] = 5
    assert validate(kind, scaled, old) == []


def test_deployment_strategy_fields() -> None:
    recreate = deployment(strategy={"type": "Recreate", "rollingUpdate": {"maxSurge": 1}})
    assert messages("Deployment", recreate) == [
        "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"
    ]
    zero = deployment(
        strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}
    )
    assert messages("Deployment", zero) == [
        'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "0%": may not be 0 when `maxSurge` is 0'
    ]
    bad = deployment(
        strategy={
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "x", "maxUnavailable": "120%"},
        }
    )
    assert messages("Deployment", bad) == [
        'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "120%": must not be greater than 100%',
        'spec.strategy.rollingUpdate.maxSurge: Invalid value: "x": a valid percent string must be a '
        "numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
    ]
    assert messages("Deployment", deployment(strategy={"type": "BlueGreen"})) == [
        'spec.strategy.type: Unsupported value: "BlueGreen": supported values: "Recreate", "RollingUpdate"'
    ]
    assert messages("Deployment", deployment(minReadySeconds=10, progressDeadlineSeconds=5)) == [
        "spec.progressDeadlineSeconds: Invalid value: 5: must be greater than minReadySeconds"
    ]


def test_stateful_set_fields_and_update() -> None:
    obj = deployment(
        "StatefulSet",
        podManagementPolicy="Random",
        updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": -1}},
    )
    assert messages("StatefulSet", obj) == [
        'spec.podManagementPolicy: Unsupported value: "Random": supported values: "OrderedReady", "Parallel"',
        "spec.updateStrategy.rollingUpdate.partition: Invalid value: -1: must be greater than or equal to 0",
    ]
    old = deployment("StatefulSet", serviceName="db")
    forbidden = (
        "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', "
        "'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
        "'minReadySeconds' are forbidden"
    )
    for field, value in [
        ("serviceName", "db2"),
        ("selector", {"matchLabels": {"app": "web", "x": "y"}}),
    ]:
        new = copy.deepcopy(old)
        new["spec"][field] = value
        assert forbidden in messages("StatefulSet", new, old)
    scaled = copy.deepcopy(old)
    scaled["spec"]["replicas"] = 3
    scaled["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"
    assert validate("StatefulSet", scaled, old) == []


# --- EndpointSlice, Endpoints, Lease, ConfigMap, Secret, Node, Namespace -------------------------


def slice_(**fields: Any) -> Obj:
    return as_created(
        "EndpointSlice", {"metadata": {"name": "web-1"}, "addressType": "IPv4", **fields}
    )


def test_endpoint_slice_address_type_and_addresses() -> None:
    assert messages("EndpointSlice", slice_(addressType="IPv5")) == [
        'addressType: Unsupported value: "IPv5": supported values: "FQDN", "IPv4", "IPv6"'
    ]
    obj = slice_(endpoints=[{"addresses": []}, {"addresses": ["fd00::1", "10.0.0.256"]}])
    assert messages("EndpointSlice", obj) == [
        "endpoints[0].addresses: Required value: must contain at least 1 address",
        'endpoints[1].addresses[0]: Invalid value: "fd00::1": must be a valid IPv4 address',
        'endpoints[1].addresses[1]: Invalid value: "10.0.0.256": must be a valid IPv4 address',
    ]
    assert messages("EndpointSlice", slice_(ports=[{"port": 0, "protocol": "TCP"}])) == [
        "ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"
    ]
    old = slice_()
    assert messages("EndpointSlice", slice_(addressType="IPv6"), old) == [
        'addressType: Invalid value: "IPv6": field is immutable'
    ]


def test_endpoints_addresses_and_ports() -> None:
    obj = as_created(
        "Endpoints",
        {
            "metadata": {"name": "web"},
            "subsets": [
                {"addresses": [{"ip": "nope"}], "ports": [{"port": 80}, {"port": 81, "name": "b"}]}
            ],
        },
    )
    assert messages("Endpoints", obj) == [
        'subsets[0].addresses[0].ip: Invalid value: "nope": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)',
        "subsets[0].ports[0].name: Required value",
    ]


def test_lease_durations() -> None:
    lease = as_created(
        "Lease",
        {"metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1}},
    )
    assert messages("Lease", lease) == [
        "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
        "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
    ]


@pytest.mark.parametrize(
    ("kind", "section"), [("ConfigMap", "data"), ("Secret", "data"), ("ConfigMap", "binaryData")]
)
def test_config_keys(kind: str, section: str) -> None:
    obj = as_created(kind, {"metadata": {"name": "c"}, section: {"bad key": "x", "..x": "y"}})
    assert messages(kind, obj) == [
        f'{section}[bad key]: Invalid value: "bad key": a valid config key must consist of '
        "alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or "
        "'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
        f"{section}[..x]: Invalid value: \"..x\": must not start with '..'",
    ]


def test_config_map_size_and_immutability() -> None:
    big = as_created(
        "ConfigMap", {"metadata": {"name": "c"}, "data": {"a": "x" * (1024 * 1024 + 1)}}
    )
    assert messages("ConfigMap", big) == ["data: Too long: may not be more than 1048576 bytes"]
    old = as_created(
        "ConfigMap", {"metadata": {"name": "c"}, "data": {"a": "1"}, "immutable": True}
    )
    new = copy.deepcopy(old)
    new["data"]["a"] = "2"
    assert messages("ConfigMap", new, old) == [
        "data: Forbidden: field is immutable when `immutable` is set"
    ]


def test_secret_type_rules() -> None:
    tls = as_created(
        "Secret",
        {"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}},
    )
    assert messages("Secret", tls) == ["data[tls.key]: Required value"]
    old = as_created("Secret", {"metadata": {"name": "s"}})
    new = copy.deepcopy(old)
    new["type"] = "example.com/custom"
    assert messages("Secret", new, old) == [
        'type: Invalid value: "example.com/custom": field is immutable'
    ]


def test_node_rules() -> None:
    node = as_created(
        "Node",
        {
            "metadata": {"name": "n1"},
            "spec": {
                "podCIDRs": ["10.244.1.0/33"],
                "taints": [{"key": "k", "effect": "Sometimes"}],
            },
        },
    )
    assert messages("Node", node) == [
        'spec.podCIDRs[0]: Invalid value: "10.244.1.0/33": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)',
        'spec.taints[0].effect: Unsupported value: "Sometimes": supported values: "NoExecute", "NoSchedule", "PreferNoSchedule"',
    ]
    old = as_created("Node", {"metadata": {"name": "n1"}, "spec": {"podCIDRs": ["10.244.1.0/24"]}})
    new = copy.deepcopy(old)
    new["spec"]["podCIDRs"] = ["10.244.2.0/24"]
    assert messages("Node", new, old) == [
        'spec.podCIDRs: Forbidden: node updates may not change podCIDR except from "" to valid'
    ]
    unassigned = as_created("Node", {"metadata": {"name": "n1"}})
    assert validate("Node", old, unassigned) == []


def test_namespace_finalizers() -> None:
    ns = as_created("Namespace", {"metadata": {"name": "a"}, "spec": {"finalizers": ["bad/fin/x"]}})
    [error] = validate("Namespace", ns)
    assert error.field == "spec.finalizers[0]" and error.reason == "FieldValueInvalid"


def test_event_namespace_must_match() -> None:
    event = as_created(
        "Event",
        {"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "namespace": "other"}},
    )
    assert messages("Event", event) == [
        'involvedObject.namespace: Invalid value: "other": does not match event.namespace'
    ]
