"""Defaulting: golden objects for each kind, and properties (idempotent; a defaulted
valid object validates, on create and on a no-op update)."""

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minikube_py.api.defaults import apply_defaults, image_pull_policy
from minikube_py.api.types import Obj
from minikube_py.api.validation import validate


def defaulted(kind: str, obj: Obj) -> Obj:
    obj = copy.deepcopy(obj)
    apply_defaults(kind, obj)
    return obj


def test_pod_golden() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "nginx:1.27",
                    "ports": [{"containerPort": 80}],
                    "readinessProbe": {"httpGet": {"port": 80}},
                    "resources": {"limits": {"cpu": "500m"}},
                    "env": [
                        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
                    ],
                }
            ],
            "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}, {"name": "scratch"}],
        },
    }
    assert defaulted("Pod", pod)["spec"] == {
        "containers": [
            {
                "name": "app",
                "image": "nginx:1.27",
                "imagePullPolicy": "IfNotPresent",
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "readinessProbe": {
                    "httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
                    "timeoutSeconds": 1,
                    "periodSeconds": 10,
                    "successThreshold": 1,
                    "failureThreshold": 3,
                },
                "resources": {"limits": {"cpu": "500m"}, "requests": {"cpu": "500m"}},
                "env": [
                    {
                        "name": "NODE",
                        "valueFrom": {
                            "fieldRef": {"fieldPath": "spec.nodeName", "apiVersion": "v1"}
                        },
                    }
                ],
            }
        ],
        "volumes": [
            {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 420}},
            {"name": "scratch", "emptyDir": {}},
        ],
        "restartPolicy": "Always",
        "dnsPolicy": "ClusterFirst",
        "terminationGracePeriodSeconds": 30,
        "schedulerName": "default-scheduler",
        "securityContext": {},
        "enableServiceLinks": True,
        "priority": 0,
        "preemptionPolicy": "PreemptLowerPriority",
        "serviceAccountName": "default",
        "serviceAccount": "default",
        "tolerations": [
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
            {
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
        ],
    }


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.27", "IfNotPresent"),
        ("localhost:5000/nginx", "Always"),
        ("localhost:5000/nginx:1.0", "IfNotPresent"),
        ("busybox@sha256:" + "a" * 64, "IfNotPresent"),
        ("busybox:latest@sha256:" + "a" * 64, "Always"),
        ("localhost:5000/team/app@sha256:" + "b" * 64, "IfNotPresent"),
    ],
)
def test_image_pull_policy(image: str, policy: str) -> None:
    assert image_pull_policy(image) == policy


def test_user_values_are_kept() -> None:
    pod = {
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": "robot",
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 5,
                }
            ],
            "containers": [{"name": "a", "image": "x", "imagePullPolicy": "Never"}],
        }
    }
    spec = defaulted("Pod", pod)["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["serviceAccount"] == "robot"
    assert spec["containers"][0]["imagePullPolicy"] == "Never"
    not_ready = [t for t in spec["tolerations"] if t["key"] == "node.kubernetes.io/not-ready"]
    assert not_ready == [pod["spec"]["tolerations"][0]]
    assert len(spec["tolerations"]) == 2


def test_nulls_read_as_unset() -> None:
    pod = {
        "metadata": {"name": "a", "labels": None, "creationTimestamp": None},
        "spec": {
            "containers": [{"name": "a", "image": "x", "resources": None, "ports": None}],
            "securityContext": None,
        },
    }
    out = defaulted("Pod", pod)
    assert out["metadata"] == {"name": "a"}
    assert out["spec"]["securityContext"] == {}
    assert out["spec"]["containers"][0]["resources"] == {}
    assert "ports" not in out["spec"]["containers"][0]
    assert defaulted("Deployment", {"spec": None})["spec"]["replicas"] == 1


def test_host_network_ports_get_host_ports() -> None:
    pod = {
        "spec": {
            "hostNetwork": True,
            "containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 53}]}],
        }
    }
    assert defaulted("Pod", pod)["spec"]["containers"][0]["ports"][0]["hostPort"] == 53


def test_cluster_ip_service_golden() -> None:
    svc = {
        "spec": {
            "selector": {"app": "web"},
            "ports": [{"port": 80}, {"port": 443, "targetPort": "https", "name": "b"}],
        }
    }
    assert defaulted("Service", svc)["spec"] == {
        "selector": {"app": "web"},
        "ports": [
            {"port": 80, "protocol": "TCP", "targetPort": 80},
            {"port": 443, "targetPort": "https", "name": "b", "protocol": "TCP"},
        ],
        "type": "ClusterIP",
        "sessionAffinity": "None",
        "internalTrafficPolicy": "Cluster",
        "ipFamilyPolicy": "SingleStack",
        "ipFamilies": ["IPv4"],
    }


def test_load_balancer_service_defaults() -> None:
    spec = defaulted(
        "Service",
        {"spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "sessionAffinity": "ClientIP"}},
    )["spec"]
    assert spec["externalTrafficPolicy"] == "Cluster"
    assert spec["allocateLoadBalancerNodePorts"] is True
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}


def test_node_port_service_has_external_policy_but_no_lb_fields() -> None:
    spec = defaulted("Service", {"spec": {"type": "NodePort", "ports": [{"port": 80}]}})["spec"]
    assert spec["externalTrafficPolicy"] == "Cluster"
    assert "allocateLoadBalancerNodePorts" not in spec


def test_external_name_service_gets_no_ip_fields() -> None:
    spec = defaulted("Service", {"spec": {"type": "ExternalName", "externalName": "a.b"}})["spec"]
    assert spec == {"type": "ExternalName", "externalName": "a.b", "sessionAffinity": "None"}


def test_headless_service_families() -> None:
    with_selector = defaulted("Service", {"spec": {"clusterIP": "None", "selector": {"a": "b"}}})
    without = defaulted("Service", {"spec": {"clusterIP": "None"}})
    assert with_selector["spec"]["ipFamilyPolicy"] == "SingleStack"
    assert without["spec"]["ipFamilyPolicy"] == "RequireDualStack"
    assert without["spec"]["clusterIPs"] == ["None"]
    v6 = defaulted("Service", {"spec": {"clusterIP": "fd00::10", "ports": [{"port": 1}]}})
    assert v6["spec"]["ipFamilies"] == ["IPv6"]


def test_deployment_defaults() -> None:
    dep = defaulted(
        "Deployment",
        {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x:1"}]}}}},
    )
    spec = dep["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    assert spec["template"]["spec"]["restartPolicy"] == "Always"
    assert spec["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    recreate = defaulted("Deployment", {"spec": {"strategy": {"type": "Recreate"}}})
    assert recreate["spec"]["strategy"] == {"type": "Recreate"}


def test_pod_templates_get_only_the_pod_spec_defaults() -> None:
    container = {"name": "a", "image": "x:1", "resources": {"limits": {"cpu": "1"}}}
    template = {"spec": {"hostNetwork": True, "containers": [container]}}
    spec = defaulted("ReplicaSet", {"spec": {"template": template}})["spec"]["template"]["spec"]
    # admission and SetDefaults_Pod act on Pods only, as `kubectl get deploy -o yaml` shows
    for pod_only in ("enableServiceLinks", "priority", "serviceAccountName", "tolerations"):
        assert pod_only not in spec
    assert spec["containers"][0]["resources"] == {"limits": {"cpu": "1"}}
    assert spec["securityContext"] == {}


def test_session_affinity_config_follows_the_affinity() -> None:
    none = defaulted(
        "Service", {"spec": {"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}}}
    )
    assert "sessionAffinityConfig" not in none["spec"]
    kept = defaulted(
        "Service",
        {
            "spec": {
                "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}},
            }
        },
    )
    assert kept["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 5}}


def test_external_ips_make_a_cluster_ip_service_externally_accessible() -> None:
    spec = defaulted(
        "Service", {"spec": {"externalIPs": ["192.168.49.9"], "ports": [{"port": 1}]}}
    )["spec"]
    assert spec["externalTrafficPolicy"] == "Cluster"


def test_replica_set_and_stateful_set_defaults() -> None:
    assert defaulted("ReplicaSet", {"spec": {}})["spec"]["replicas"] == 1
    sts = defaulted(
        "StatefulSet",
        {"spec": {"serviceName": "db", "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}},
    )["spec"]
    assert sts["replicas"] == 1
    assert sts["serviceName"] == "db"
    assert sts["podManagementPolicy"] == "OrderedReady"
    assert sts["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert sts["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }
    assert sts["volumeClaimTemplates"][0]["spec"]["volumeMode"] == "Filesystem"
    assert sts["volumeClaimTemplates"][0]["status"] == {"phase": "Pending"}
    on_delete = defaulted("StatefulSet", {"spec": {"updateStrategy": {"type": "OnDelete"}}})
    assert on_delete["spec"]["updateStrategy"] == {"type": "OnDelete"}


def test_namespace_secret_node_endpoint_slice_defaults() -> None:
    ns = defaulted("Namespace", {"metadata": {"name": "team-a"}})
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a"}
    assert ns["spec"] == {"finalizers": ["kubernetes"]}
    assert ns["status"] == {"phase": "Active"}
    assert defaulted("Secret", {})["type"] == "Opaque"
    assert defaulted("Secret", {"type": "kubernetes.io/tls"})["type"] == "kubernetes.io/tls"
    node = defaulted("Node", {"status": {"capacity": {"cpu": "2", "pods": "110"}}})
    assert node["status"]["allocatable"] == {"cpu": "2", "pods": "110"}
    eps = defaulted("EndpointSlice", {"addressType": "IPv4", "ports": [{"port": 80}]})
    assert eps["ports"] == [{"port": 80, "name": "", "protocol": "TCP"}]
    ep = defaulted("Endpoints", {"subsets": [{"ports": [{"port": 80}]}]})
    assert ep["subsets"][0]["ports"] == [{"port": 80, "protocol": "TCP"}]


def test_kinds_without_defaults_are_untouched() -> None:
    for kind in ("ConfigMap", "ServiceAccount", "Lease", "Event"):
        obj = {"metadata": {"name": "x"}, "data": {"a": "b"}}
        assert defaulted(kind, obj) == obj


# --- properties -------------------------------------------------------------------------


def _name_containers(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        **spec,
        "containers": [{**c, "name": f"c{i}"} for i, c in enumerate(spec["containers"])],
    }


names = st.from_regex(r"\A[a-z]([a-z0-9-]{0,10}[a-z0-9])?\Z")
images = st.sampled_from(["nginx", "nginx:latest", "busybox:1.36", "reg.local:5000/app:v2"])
probes = st.fixed_dictionaries(
    {"httpGet": st.fixed_dictionaries({"port": st.integers(1, 65535)})},
    optional={"periodSeconds": st.integers(1, 60), "timeoutSeconds": st.integers(1, 10)},
)
containers = st.fixed_dictionaries(
    {"image": images},
    optional={
        "ports": st.lists(
            st.fixed_dictionaries(
                {"containerPort": st.integers(1, 65535)},
                optional={"protocol": st.sampled_from(["TCP", "UDP"])},
            ),
            max_size=2,
        ),
        "livenessProbe": probes,
        "readinessProbe": probes,
        "imagePullPolicy": st.sampled_from(["Always", "Never"]),
        "resources": st.fixed_dictionaries(
            {},
            optional={
                "limits": st.fixed_dictionaries({"cpu": st.sampled_from(["1", "500m"])}),
            },
        ),
    },
)
pod_specs = st.fixed_dictionaries(
    {"containers": st.lists(containers, min_size=1, max_size=3)},
    optional={
        "restartPolicy": st.sampled_from(["Always", "OnFailure", "Never"]),
        "terminationGracePeriodSeconds": st.integers(0, 100),
        "hostNetwork": st.booleans(),
    },
).map(_name_containers)


def _meta(name: str) -> Obj:
    return {"name": name, "namespace": "default"}


pods = st.builds(lambda name, spec: {"metadata": _meta(name), "spec": spec}, names, pod_specs)
service_ports = st.lists(
    st.fixed_dictionaries(
        {"port": st.integers(1, 65535)},
        optional={"targetPort": st.integers(1, 65535), "protocol": st.sampled_from(["TCP", "UDP"])},
    ),
    min_size=1,
    max_size=3,
).map(lambda ports: [{**p, "name": f"p{i}"} for i, p in enumerate(ports)])
services = st.builds(
    lambda name, type_, ports, affinity: {
        "metadata": _meta(name),
        "spec": {
            "type": type_,
            "ports": ports,
            "selector": {"app": name},
            "sessionAffinity": affinity,
        },
    },
    names,
    st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer"]),
    service_ports,
    st.sampled_from(["None", "ClientIP"]),
)
other_services = st.builds(
    lambda name, spec: {"metadata": _meta(name), "spec": spec},
    names,
    st.one_of(
        st.builds(
            lambda host: {"type": "ExternalName", "externalName": f"{host}.example.com"}, names
        ),
        st.builds(lambda ports: {"clusterIP": "None", "ports": ports}, service_ports),
        st.builds(
            lambda ports, ip: {"externalIPs": [ip], "ports": ports},
            service_ports,
            st.ip_addresses(v=4).map(str),
        ),
    ),
)
deployments = st.builds(
    lambda name, replicas, spec: {
        "metadata": _meta(name),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {**spec, "restartPolicy": "Always"},
            },
        },
    },
    names,
    st.integers(0, 5),
    pod_specs,
)
objects = st.one_of(
    st.tuples(st.just("Pod"), pods),
    st.tuples(st.just("Service"), services),
    st.tuples(st.just("Service"), other_services),
    st.tuples(
        st.just("Secret"), names.map(lambda n: {"metadata": _meta(n), "data": {"k": "dg=="}})
    ),
    st.tuples(st.just("Deployment"), deployments),
    st.tuples(st.just("ReplicaSet"), deployments),
    st.tuples(st.just("StatefulSet"), deployments),
    st.tuples(st.just("Namespace"), names.map(lambda n: {"metadata": {"name": n}})),
)


@settings(max_examples=150, deadline=None)
@given(objects)
def test_defaulting_is_idempotent(kind_and_obj: tuple[str, Obj]) -> None:
    kind, obj = kind_and_obj
    once = defaulted(kind, obj)
    assert defaulted(kind, once) == once


@settings(max_examples=150, deadline=None)
@given(objects)
def test_defaulted_valid_objects_stay_valid(kind_and_obj: tuple[str, Obj]) -> None:
    kind, obj = kind_and_obj
    once = defaulted(kind, obj)
    assert validate(kind, once) == []
    # defaults are stable under a no-op update, too
    assert validate(kind, defaulted(kind, once), old=once) == []
