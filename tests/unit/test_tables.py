# ruff: noqa: E501  (golden rows are easier to read one per line)
"""Server-side tables: kubectl's headers, golden rows per kind (pod STATUS the way
kubectl computes it), HumanDuration, and the Table object itself."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apiserver.tables import (
    build_table,
    format_label_selector,
    human_duration,
    table_columns,
    table_row_cells,
)
from minikube_py.api.resources import RESOURCES
from minikube_py.api.types import Obj

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, age: str | None = None, **extra: Any) -> Obj:
    return {
        "name": name,
        "namespace": "default",
        "creationTimestamp": age or ago(minutes=5),
        **extra,
    }


# --- human durations ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (59, "59s"),
        (119, "119s"),
        (120, "2m"),
        (182, "3m2s"),
        (599, "9m59s"),
        (600, "10m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600, "3h"),
        (5 * 3600 + 180, "5h3m"),
        (8 * 3600 + 59 * 60, "8h"),
        (47 * 3600, "47h"),
        (2 * 86400 + 3 * 3600, "2d3h"),
        (7 * 86400, "7d"),
        (8 * 86400 + 3600, "8d"),
        (400 * 86400, "400d"),
        (2 * 365 * 86400, "2y"),
        (2 * 365 * 86400 + 20 * 86400, "2y20d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


@given(st.integers(min_value=0, max_value=20 * 365 * 86400))
def test_human_duration_never_overstates_age(seconds: int) -> None:
    text = human_duration(seconds)
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "y": 365 * 86400}
    total, number = 0, ""
    for char in text:
        if char.isdigit():
            number += char
        else:
            total += int(number) * units[char]
            number = ""
    assert total <= seconds


# --- columns -----------------------------------------------------------------------------


def headers(kind: str, wide: bool) -> list[str]:
    return [c["name"].upper() for c in table_columns(kind) if wide or c["priority"] == 0]


@pytest.mark.parametrize(
    ("kind", "normal", "wide"),
    [
        (
            "Pod",
            "NAME READY STATUS RESTARTS AGE",
            "NAME READY STATUS RESTARTS AGE IP NODE NOMINATED NODE READINESS GATES",
        ),
        (
            "Service",
            "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE",
            "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE SELECTOR",
        ),
        ("Endpoints", "NAME ENDPOINTS AGE", "NAME ENDPOINTS AGE"),
        (
            "EndpointSlice",
            "NAME ADDRESSTYPE PORTS ENDPOINTS AGE",
            "NAME ADDRESSTYPE PORTS ENDPOINTS AGE",
        ),
        (
            "Node",
            "NAME STATUS ROLES AGE VERSION",
            "NAME STATUS ROLES AGE VERSION INTERNAL-IP EXTERNAL-IP OS-IMAGE KERNEL-VERSION CONTAINER-RUNTIME",
        ),
        ("Namespace", "NAME STATUS AGE", "NAME STATUS AGE"),
        (
            "Deployment",
            "NAME READY UP-TO-DATE AVAILABLE AGE",
            "NAME READY UP-TO-DATE AVAILABLE AGE CONTAINERS IMAGES SELECTOR",
        ),
        (
            "ReplicaSet",
            "NAME DESIRED CURRENT READY AGE",
            "NAME DESIRED CURRENT READY AGE CONTAINERS IMAGES SELECTOR",
        ),
        ("StatefulSet", "NAME READY AGE", "NAME READY AGE CONTAINERS IMAGES"),
        ("ConfigMap", "NAME DATA AGE", "NAME DATA AGE"),
        ("Secret", "NAME TYPE DATA AGE", "NAME TYPE DATA AGE"),
        (
            "Event",
            "LAST SEEN TYPE REASON OBJECT MESSAGE",
            "LAST SEEN TYPE REASON OBJECT SUBOBJECT SOURCE MESSAGE FIRST SEEN COUNT NAME",
        ),
        ("ServiceAccount", "NAME SECRETS AGE", "NAME SECRETS AGE"),
        ("Lease", "NAME HOLDER AGE", "NAME HOLDER AGE"),
    ],
)
def test_columns_match_kubectl_headers(kind: str, normal: str, wide: str) -> None:
    assert " ".join(headers(kind, wide=False)) == normal
    assert " ".join(headers(kind, wide=True)) == wide
    for column in table_columns(kind):
        assert set(column) == {"name", "type", "format", "description", "priority"}
        assert column["description"]


def test_every_catalogued_kind_has_columns() -> None:
    for resource in RESOURCES:
        names = [c["name"] for c in table_columns(resource.kind)]
        assert "Name" in names


# --- pods ----------------------------------------------------------------------------------


def pod(status: Obj, spec: Obj | None = None, **metadata: Any) -> Obj:
    base_spec = {"containers": [{"name": "app", "image": "nginx"}], "nodeName": "node-1"}
    return {
        "metadata": meta("web", **metadata),
        "spec": {**base_spec, **(spec or {})},
        "status": status,
    }


def running(
    name: str = "app", ready: bool = True, restarts: int = 0, last: str | None = None
) -> Obj:
    status: Obj = {
        "name": name,
        "ready": ready,
        "restartCount": restarts,
        "state": {"running": {"startedAt": ago(minutes=4)}},
    }
    if last:
        status["lastState"] = {"terminated": {"exitCode": 1, "finishedAt": last}}
    return status


def waiting(reason: str, restarts: int = 0, last: str | None = None, name: str = "app") -> Obj:
    status: Obj = {
        "name": name,
        "ready": False,
        "restartCount": restarts,
        "state": {"waiting": {"reason": reason}},
    }
    if last:
        status["lastState"] = {"terminated": {"exitCode": 1, "finishedAt": last}}
    return status


def terminated(exit_code: int, reason: str = "", name: str = "app") -> Obj:
    state: Obj = {"exitCode": exit_code}
    if reason:
        state["reason"] = reason
    return {"name": name, "ready": False, "restartCount": 0, "state": {"terminated": state}}


@pytest.mark.parametrize(
    ("obj", "cells"),
    [
        (
            pod(
                {
                    "phase": "Running",
                    "podIPs": [{"ip": "10.244.1.5"}],
                    "containerStatuses": [running()],
                    "conditions": [{"type": "Ready", "status": "True"}],
                }
            ),
            ["web", "1/1", "Running", "0", "5m", "10.244.1.5", "node-1", "<none>", "<none>"],
        ),
        (
            pod({"phase": "Pending"}, spec={"nodeName": ""}),
            ["web", "0/1", "Pending", "0", "5m", "<none>", "<none>", "<none>", "<none>"],
        ),
        (
            pod({"phase": "Pending", "containerStatuses": [waiting("ContainerCreating")]}),
            ["web", "0/1", "ContainerCreating", "0", "5m", "<none>", "node-1", "<none>", "<none>"],
        ),
        (
            pod(
                {
                    "phase": "Running",
                    "containerStatuses": [waiting("CrashLoopBackOff", 2, ago(minutes=1))],
                }
            ),
            [
                "web",
                "0/1",
                "CrashLoopBackOff",
                "2 (60s ago)",
                "5m",
                "<none>",
                "node-1",
                "<none>",
                "<none>",
            ],
        ),
        (
            pod({"phase": "Succeeded", "containerStatuses": [terminated(0, "Completed")]}),
            ["web", "0/1", "Completed", "0", "5m", "<none>", "node-1", "<none>", "<none>"],
        ),
        (
            pod({"phase": "Failed", "containerStatuses": [terminated(137)]}),
            ["web", "0/1", "ExitCode:137", "0", "5m", "<none>", "node-1", "<none>", "<none>"],
        ),
        (
            pod(
                {"phase": "Running", "containerStatuses": [running()]},
                deletionTimestamp=ago(seconds=3),
            ),
            ["web", "1/1", "Terminating", "0", "5m", "<none>", "node-1", "<none>", "<none>"],
        ),
        (
            pod(
                {
                    "phase": "Pending",
                    "initContainerStatuses": [waiting("PodInitializing", name="init")],
                    "containerStatuses": [waiting("PodInitializing")],
                },
                spec={"initContainers": [{"name": "init", "image": "busybox"}]},
            ),
            ["web", "0/1", "Init:0/1", "0", "5m", "<none>", "node-1", "<none>", "<none>"],
        ),
        (
            pod(
                {
                    "phase": "Pending",
                    "initContainerStatuses": [
                        terminated(0, "Completed", name="a"),
                        waiting("CrashLoopBackOff", 3, ago(hours=1), name="b"),
                    ],
                },
                spec={"initContainers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x"}]},
            ),
            [
                "web",
                "0/1",
                "Init:CrashLoopBackOff",
                "3 (60m ago)",
                "5m",
                "<none>",
                "node-1",
                "<none>",
                "<none>",
            ],
        ),
        (
            pod(
                {"phase": "Pending", "initContainerStatuses": [terminated(2, name="a")]},
                spec={"initContainers": [{"name": "a", "image": "x"}]},
            ),
            ["web", "0/1", "Init:ExitCode:2", "0", "5m", "<none>", "node-1", "<none>", "<none>"],
        ),
        (
            pod(
                {
                    "phase": "Running",
                    "containerStatuses": [
                        running("a"),
                        running("b", ready=False, restarts=1, last=ago(minutes=3)),
                    ],
                    "conditions": [{"type": "Gate", "status": "True"}],
                },
                spec={
                    "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}],
                    "readinessGates": [{"conditionType": "Gate"}, {"conditionType": "Other"}],
                },
            ),
            ["web", "1/2", "Running", "1 (3m ago)", "5m", "<none>", "node-1", "<none>", "1/2"],
        ),
        (
            pod(
                {
                    "phase": "Pending",
                    "conditions": [
                        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}
                    ],
                }
            ),
            ["web", "0/1", "SchedulingGated", "0", "5m", "<none>", "node-1", "<none>", "<none>"],
        ),
    ],
)
def test_pod_rows(obj: Obj, cells: list[Any]) -> None:
    assert table_row_cells("Pod", obj, NOW) == cells


def test_sidecar_counts_toward_total_and_ready() -> None:
    obj = pod(
        {
            "phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}],
            "initContainerStatuses": [{**running("proxy"), "started": True}],
            "containerStatuses": [running()],
        },
        spec={"initContainers": [{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}]},
    )
    assert table_row_cells("Pod", obj, NOW)[1:3] == ["2/2", "Running"]


# --- services and endpoints -------------------------------------------------------------------


def svc(spec: Obj, status: Obj | None = None) -> Obj:
    return {"metadata": meta("web"), "spec": spec, "status": status or {}}


@pytest.mark.parametrize(
    ("obj", "cells"),
    [
        (
            svc(
                {
                    "type": "ClusterIP",
                    "clusterIPs": ["10.96.0.10"],
                    "selector": {"tier": "fe", "app": "web"},
                    "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
                }
            ),
            ["web", "ClusterIP", "10.96.0.10", "<none>", "80/TCP,53/UDP", "5m", "app=web,tier=fe"],
        ),
        (
            svc(
                {
                    "type": "NodePort",
                    "clusterIPs": ["10.96.0.11"],
                    "selector": {"app": "test"},
                    "ports": [{"port": 80, "nodePort": 30000, "protocol": "TCP"}],
                }
            ),
            ["web", "NodePort", "10.96.0.11", "<none>", "80:30000/TCP", "5m", "app=test"],
        ),
        (
            svc(
                {
                    "type": "LoadBalancer",
                    "clusterIPs": ["10.96.0.12"],
                    "ports": [{"port": 443, "nodePort": 31443, "protocol": "TCP"}],
                }
            ),
            ["web", "LoadBalancer", "10.96.0.12", "<pending>", "443:31443/TCP", "5m", "<none>"],
        ),
        (
            svc(
                {
                    "type": "LoadBalancer",
                    "clusterIPs": ["10.96.0.12"],
                    "externalIPs": ["1.2.3.4"],
                    "ports": [{"port": 443, "nodePort": 31443, "protocol": "TCP"}],
                },
                {"loadBalancer": {"ingress": [{"ip": "192.168.49.201"}, {"ip": "192.168.49.200"}]}},
            ),
            [
                "web",
                "LoadBalancer",
                "10.96.0.12",
                "192.168.49.200,192.168.49.201,1.2.3.4",
                "443:31443/TCP",
                "5m",
                "<none>",
            ],
        ),
        (
            svc({"type": "ExternalName", "externalName": "test.service.com"}),
            ["web", "ExternalName", "<none>", "test.service.com", "<none>", "5m", "<none>"],
        ),
        (
            svc(
                {
                    "type": "ClusterIP",
                    "clusterIP": "None",
                    "clusterIPs": ["None"],
                    "selector": {"app": "db"},
                    "ports": [{"port": 5432, "protocol": "TCP"}],
                }
            ),
            ["web", "ClusterIP", "None", "<none>", "5432/TCP", "5m", "app=db"],
        ),
    ],
)
def test_service_rows(obj: Obj, cells: list[Any]) -> None:
    assert table_row_cells("Service", obj, NOW) == cells


@pytest.mark.parametrize(
    ("subsets", "cell"),
    [
        (None, "<none>"),
        (
            [{"addresses": [{"ip": "10.244.1.5"}, {"ip": "10.244.2.7"}], "ports": [{"port": 80}]}],
            "10.244.1.5:80,10.244.2.7:80",
        ),
        (
            [
                {
                    "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
                    "ports": [{"port": 80}, {"port": 443}],
                }
            ],
            "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more...",
        ),
        ([{"addresses": [{"ip": "fd00::5"}], "ports": [{"port": 80}]}], "[fd00::5]:80"),
        ([{"addresses": [{"ip": "10.0.0.1"}]}], "10.0.0.1"),
        ([{"notReadyAddresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}], ""),
    ],
)
def test_endpoints_rows(subsets: list[Obj] | None, cell: str) -> None:
    obj = {"metadata": meta("web"), "subsets": subsets}
    assert table_row_cells("Endpoints", obj, NOW) == ["web", cell, "5m"]


def test_endpoint_slice_rows() -> None:
    obj = {
        "metadata": meta("web-abcde"),
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 80}, {"name": "dns"}, {}, {"port": 9}],
        "endpoints": [{"addresses": ["10.244.1.5"]}, {"addresses": ["10.244.2.7"]}],
    }
    assert table_row_cells("EndpointSlice", obj, NOW) == [
        "web-abcde",
        "IPv4",
        "80,dns,* + 1 more...",
        "10.244.1.5,10.244.2.7",
        "5m",
    ]
    empty = {"metadata": meta("web-x"), "addressType": "IPv4"}
    assert table_row_cells("EndpointSlice", empty, NOW) == [
        "web-x",
        "IPv4",
        "<unset>",
        "<unset>",
        "5m",
    ]


# --- nodes, namespaces, workloads ----------------------------------------------------------------


def test_node_rows() -> None:
    node = {
        "metadata": {
            "name": "mk-1",
            "creationTimestamp": ago(days=2, hours=3),
            "labels": {
                "node-role.kubernetes.io/control-plane": "",
                "kubernetes.io/role": "edge",
                "node-role.kubernetes.io/": "",
            },
        },
        "spec": {"unschedulable": True},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True"},
            ],
            "addresses": [
                {"type": "Hostname", "address": "mk-1"},
                {"type": "InternalIP", "address": "192.168.49.2"},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.32.0",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "kernelVersion": "6.1.0",
                "containerRuntimeVersion": "docker://28.2.2",
            },
        },
    }
    assert table_row_cells("Node", node, NOW) == [
        "mk-1",
        "Ready,SchedulingDisabled",
        "control-plane,edge",
        "2d3h",
        "v1.32.0",
        "192.168.49.2",
        "<none>",
        "Debian GNU/Linux 12 (bookworm)",
        "6.1.0",
        "docker://28.2.2",
    ]
    bare = {"metadata": {"name": "n", "creationTimestamp": ago(seconds=30)}}
    assert table_row_cells("Node", bare, NOW) == [
        "n",
        "Unknown",
        "<none>",
        "30s",
        "",
        "<none>",
        "<none>",
        "<unknown>",
        "<unknown>",
        "<unknown>",
    ]
    not_ready = {
        "metadata": {"name": "n"},
        "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]},
    }
    assert table_row_cells("Node", not_ready, NOW)[1:4] == ["NotReady", "<none>", "<unknown>"]


def test_namespace_rows() -> None:
    ns = {
        "metadata": {"name": "kube-system", "creationTimestamp": ago(hours=26)},
        "status": {"phase": "Active"},
    }
    assert table_row_cells("Namespace", ns, NOW) == ["kube-system", "Active", "26h"]


def workload_spec() -> Obj:
    return {
        "replicas": 3,
        "selector": {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["fe", "be"]},
                {"key": "legacy", "operator": "DoesNotExist"},
            ],
        },
        "template": {
            "spec": {
                "containers": [
                    {"name": "app", "image": "nginx:1.27"},
                    {"name": "log", "image": "busybox"},
                ]
            }
        },
    }


def test_deployment_replica_set_stateful_set_rows() -> None:
    status = {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
    selector = "app=web,!legacy,tier in (be,fe)"
    deploy = {"metadata": meta("web"), "spec": workload_spec(), "status": status}
    assert table_row_cells("Deployment", deploy, NOW) == [
        "web",
        "2/3",
        3,
        2,
        "5m",
        "app,log",
        "nginx:1.27,busybox",
        selector,
    ]
    assert table_row_cells("ReplicaSet", deploy, NOW) == [
        "web",
        3,
        3,
        2,
        "5m",
        "app,log",
        "nginx:1.27,busybox",
        selector,
    ]
    assert table_row_cells("StatefulSet", deploy, NOW) == [
        "web",
        "2/3",
        "5m",
        "app,log",
        "nginx:1.27,busybox",
    ]
    fresh = {
        "metadata": meta("web"),
        "spec": {"replicas": 1, "template": {"spec": {"containers": []}}},
    }
    assert table_row_cells("Deployment", fresh, NOW)[:4] == ["web", "0/1", 0, 0]


def test_format_label_selector() -> None:
    assert format_label_selector(None) == "<none>"
    assert format_label_selector({}) == "<none>"
    assert (
        format_label_selector(
            {
                "matchExpressions": [
                    {"key": "a", "operator": "NotIn", "values": ["y", "x"]},
                    {"key": "b", "operator": "Exists"},
                ]
            }
        )
        == "a notin (x,y),b"
    )


# --- config, events and the rest -------------------------------------------------------------------


def test_config_map_secret_service_account_lease_rows() -> None:
    cm = {"metadata": meta("cfg"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}
    assert table_row_cells("ConfigMap", cm, NOW) == ["cfg", 3, "5m"]
    secret = {
        "metadata": meta("tls"),
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": "", "tls.key": ""},
    }
    assert table_row_cells("Secret", secret, NOW) == ["tls", "kubernetes.io/tls", 2, "5m"]
    sa = {"metadata": meta("default")}
    assert table_row_cells("ServiceAccount", sa, NOW) == ["default", 0, "5m"]
    lease = {"metadata": meta("kube-scheduler"), "spec": {"holderIdentity": "mk-1_abc"}}
    assert table_row_cells("Lease", lease, NOW) == ["kube-scheduler", "mk-1_abc", "5m"]
    assert table_row_cells("Lease", {"metadata": meta("l")}, NOW) == ["l", "", "5m"]


def test_event_rows() -> None:
    event = {
        "metadata": meta("web.17a"),
        "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
        "type": "Warning",
        "reason": "BackOff",
        "message": "Back-off restarting failed container\n",
        "source": {"component": "kubelet", "host": "mk-1"},
        "firstTimestamp": ago(minutes=10),
        "lastTimestamp": ago(seconds=30),
        "count": 7,
    }
    assert table_row_cells("Event", event, NOW) == [
        "30s",
        "Warning",
        "BackOff",
        "pod/web",
        "spec.containers{app}",
        "kubelet, mk-1",
        "Back-off restarting failed container",
        "10m",
        7,
        "web.17a",
    ]
    new_api = {
        "metadata": meta("e2"),
        "involvedObject": {"kind": "Node"},
        "type": "Normal",
        "reason": "Starting",
        "eventTime": "2026-11-29T11:59:00.123456Z",
        "reportingComponent": "kube-proxy",
    }
    # 59.88 s ago: ages truncate to whole seconds, as Go's int(d.Seconds()) does
    assert table_row_cells("Event", new_api, NOW) == [
        "59s",
        "Normal",
        "Starting",
        "node",
        "",
        "kube-proxy",
        "",
        "59s",
        1,
        "e2",
    ]
    series = {**event, "series": {"count": 12, "lastObservedTime": "2026-11-29T11:59:55.000000Z"}}
    assert table_row_cells("Event", series, NOW)[0] == "5s"
    assert table_row_cells("Event", series, NOW)[8] == 12


def test_missing_creation_timestamp_is_unknown() -> None:
    assert table_row_cells("ConfigMap", {"metadata": {"name": "x"}}, NOW) == ["x", 0, "<unknown>"]


# --- the Table ------------------------------------------------------------------------------------------


def test_build_table_with_metadata_objects() -> None:
    done = pod({"phase": "Succeeded", "containerStatuses": [terminated(0, "Completed")]})
    live = pod({"phase": "Running", "containerStatuses": [running()]})
    table = build_table("Pod", [done, live], NOW, list_meta={"resourceVersion": "42"})
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "42"}
    assert table["columnDefinitions"] == table_columns("Pod")
    first, second = table["rows"]
    assert first["cells"] == table_row_cells("Pod", done, NOW)
    assert first["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": done["metadata"],
    }
    assert first["conditions"] == [
        {
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }
    ]
    assert "conditions" not in second


def test_build_table_include_object_none_and_object() -> None:
    cm = {"metadata": meta("cfg"), "data": {}}
    assert build_table("ConfigMap", [cm], NOW, include_object="None")["rows"][0]["object"] is None
    assert build_table("ConfigMap", [cm], NOW, include_object="Object")["rows"][0]["object"] is cm
    assert build_table("ConfigMap", [], NOW)["rows"] == []


SAMPLES: dict[str, Obj] = {
    "Pod": pod({"phase": "Running"}),
    "Service": svc(
        {
            "type": "ClusterIP",
            "clusterIPs": ["10.96.0.1"],
            "ports": [{"port": 443, "protocol": "TCP"}],
        }
    ),
    "Endpoints": {"metadata": meta("e")},
    "EndpointSlice": {"metadata": meta("s"), "addressType": "IPv4"},
    "Node": {"metadata": {"name": "n"}},
    "Namespace": {"metadata": {"name": "n"}},
    "Deployment": {"metadata": meta("d"), "spec": workload_spec()},
    "ReplicaSet": {"metadata": meta("r"), "spec": workload_spec()},
    "StatefulSet": {"metadata": meta("s"), "spec": workload_spec()},
    "ConfigMap": {"metadata": meta("c")},
    "Secret": {"metadata": meta("s"), "type": "Opaque"},
    "Event": {"metadata": meta("e"), "involvedObject": {"kind": "Pod", "name": "p"}},
    "ServiceAccount": {"metadata": meta("sa")},
    "Lease": {"metadata": meta("l")},
}


@pytest.mark.parametrize("kind", [r.kind for r in RESOURCES])
def test_every_row_has_one_cell_per_column(kind: str) -> None:
    assert len(table_row_cells(kind, SAMPLES[kind], NOW)) == len(table_columns(kind))
