"""The real kubectl against our apiserver on a real etcd: what a user types and reads.

Apply (client-side and server-side, first and repeated, with a conflict), `get` with
kube-apiserver's columns, `get -w`, `describe`, `delete` waiting until the object is
gone, kubectl's friendly errors (NotFound, AlreadyExists, Conflict, Invalid, strict
field validation), typed creates and `scale`, and the Service guide's two manifests
applied exactly as written. Each test works in a namespace of its own.
"""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ControlPlane

GUIDE = Path("/work/shared/seed/kubernetes-service-guide.md")


def manifest(*objects: dict[str, Any]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)


def web_service(name: str = "web", target_port: int = 8080, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "selector": {"app": name},
            "ports": [{"port": 80, "targetPort": target_port, "protocol": "TCP"}],
            **spec,
        },
    }


def config_map(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def get_json(cp: ControlPlane, *args: str) -> Any:
    return json.loads(cp.kubectl("get", *args, "-o", "json").stdout)


def table(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


# ------------------------------------------------------------------ apply


def test_client_side_apply(control_plane: ControlPlane, namespace: str) -> None:
    cp, ns = control_plane, namespace
    first = manifest(web_service(), config_map("cfg", key="one"))
    out = cp.kubectl("apply", "-n", ns, "-f", "-", input=first).stdout
    assert out.splitlines() == ["service/web created", "configmap/cfg created"]

    out = cp.kubectl("apply", "-n", ns, "-f", "-", input=first).stdout
    assert out.splitlines() == ["service/web unchanged", "configmap/cfg unchanged"]

    changed = manifest(web_service(target_port=9090), config_map("cfg", key="one"))
    out = cp.kubectl("apply", "-n", ns, "-f", "-", input=changed).stdout
    assert out.splitlines() == ["service/web configured", "configmap/cfg unchanged"]
    svc = get_json(cp, "-n", ns, "service", "web")
    assert svc["spec"]["ports"][0]["targetPort"] == 9090


def test_server_side_apply(control_plane: ControlPlane, namespace: str) -> None:
    cp, ns = control_plane, namespace
    doc = manifest(config_map("cfg", key="one"))
    for _ in range(2):  # first and repeated apply
        out = cp.kubectl("apply", "--server-side", "-n", ns, "-f", "-", input=doc).stdout
        assert out.strip() == "configmap/cfg serverside-applied"
    cm = get_json(cp, "-n", ns, "configmap", "cfg", "--show-managed-fields")
    assert cm["data"] == {"key": "one"}
    assert [m["manager"] for m in cm["metadata"]["managedFields"]] == ["kubectl"]

    other = manifest(config_map("cfg", key="two"))
    apply_other = ("apply", "--server-side", "--field-manager=other", "-n", ns, "-f", "-")
    refused = cp.kubectl(*apply_other, input=other, check=False)
    assert refused.returncode != 0
    assert 'Apply failed with 1 conflict: conflict with "kubectl": .data.key' in refused.stderr
    assert get_json(cp, "-n", ns, "configmap", "cfg")["data"] == {"key": "one"}

    cp.kubectl(*apply_other, "--force-conflicts", input=other)
    assert get_json(cp, "-n", ns, "configmap", "cfg")["data"] == {"key": "two"}


# ------------------------------------------------------------------ get, watch, describe


def test_get_services_prints_kube_columns(control_plane: ControlPlane, namespace: str) -> None:
    cp, ns = control_plane, namespace
    cp.kubectl("apply", "-n", ns, "-f", "-", input=manifest(web_service(type="NodePort")))
    svc = get_json(cp, "-n", ns, "service", "web")
    ip, node_port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]

    rows = table(cp.kubectl("get", "svc", "-n", ns).stdout)
    assert rows[0] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert rows[1][:5] == ["web", "NodePort", ip, "<none>", f"80:{node_port}/TCP"]
    assert rows[1][5].endswith("s")

    wide = table(cp.kubectl("get", "svc", "-n", ns, "-o", "wide").stdout)
    assert wide[0] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"]
    assert wide[1][-1] == "app=web"


def test_get_watch_shows_new_objects(control_plane: ControlPlane, namespace: str) -> None:
    cp, ns = control_plane, namespace
    cp.kubectl("create", "configmap", "listed", "-n", ns)
    watcher = subprocess.Popen(
        ["kubectl", "get", "configmaps", "-n", ns, "-w", "--request-timeout=30s"],
        env=cp.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in watcher.stdout or []:
            lines.put(line)

    def read_until(name: str) -> list[str]:
        seen: list[str] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(x.startswith(name) for x in seen):
            with contextlib.suppress(queue.Empty):
                seen.append(lines.get(timeout=0.5))
        return seen

    threading.Thread(target=pump, daemon=True).start()
    try:
        # the listed object printed: kubectl now watches from its list's resourceVersion,
        # so what is created next can only arrive through the watch
        listed = read_until("listed")
        assert listed[0].split() == ["NAME", "DATA", "AGE"], listed
        assert any(x.split()[:2] == ["listed", "0"] for x in listed), listed
        cp.kubectl("create", "configmap", "appears-later", "-n", ns, "--from-literal=a=b")
        seen = read_until("appears-later")
        assert any(x.split()[:2] == ["appears-later", "1"] for x in seen), seen
    finally:
        watcher.terminate()
        watcher.wait(10)


def test_describe_service(control_plane: ControlPlane, namespace: str) -> None:
    cp, ns = control_plane, namespace
    cp.kubectl("apply", "-n", ns, "-f", "-", input=manifest(web_service()))
    ip = get_json(cp, "-n", ns, "service", "web")["spec"]["clusterIP"]
    text = cp.kubectl("describe", "svc", "web", "-n", ns).stdout
    fields = {
        k.strip(): v.strip()
        for k, _, v in (line.partition(":") for line in text.splitlines())
        if v.strip()
    }
    assert fields["Name"] == "web"
    assert fields["Namespace"] == ns
    assert fields["Selector"] == "app=web"
    assert fields["Type"] == "ClusterIP"
    assert fields["IP"] == ip
    assert fields["Port"] == "<unset>  80/TCP"
    assert fields["TargetPort"] == "8080/TCP"
    assert fields["Session Affinity"] == "None"


# ------------------------------------------------------------------ delete


def test_delete_returns_once_the_object_is_gone(
    control_plane: ControlPlane, namespace: str
) -> None:
    cp, ns = control_plane, namespace
    held = config_map("held")
    held["metadata"]["finalizers"] = ["example.com/hold"]
    cp.kubectl("apply", "-n", ns, "-f", "-", input=manifest(held))
    deleting = subprocess.Popen(
        ["kubectl", "delete", "configmap", "held", "-n", ns, "--timeout=30s"],
        env=cp.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)
        assert deleting.poll() is None, "delete returned while a finalizer still held it"
        marked = get_json(cp, "-n", ns, "configmap", "held")
        assert marked["metadata"]["deletionTimestamp"]
        cp.kubectl(
            "patch", "configmap", "held", "-n", ns, "--type=merge",
            "-p", '{"metadata":{"finalizers":null}}',
        )  # fmt: skip
        out, err = deleting.communicate(timeout=20)
    finally:
        if deleting.poll() is None:
            deleting.kill()
    assert deleting.returncode == 0, err
    assert out.strip() == 'configmap "held" deleted'
    gone = cp.kubectl("get", "configmap", "held", "-n", ns, check=False)
    assert gone.returncode == 1 and "NotFound" in gone.stderr


# ------------------------------------------------------------------ friendly errors


def test_not_found(control_plane: ControlPlane, namespace: str) -> None:
    got = control_plane.kubectl("get", "svc", "nope", "-n", namespace, check=False)
    assert got.returncode == 1
    assert got.stderr.strip() == 'Error from server (NotFound): services "nope" not found'


def test_already_exists(control_plane: ControlPlane, namespace: str) -> None:
    cp, ns, doc = control_plane, namespace, manifest(config_map("twice"))
    assert cp.kubectl("create", "-n", ns, "-f", "-", input=doc).stdout.strip() == (
        "configmap/twice created"
    )
    again = cp.kubectl("create", "-n", ns, "-f", "-", input=doc, check=False)
    assert again.returncode == 1
    assert again.stderr.strip() == (
        'Error from server (AlreadyExists): error when creating "STDIN": '
        'configmaps "twice" already exists'
    )


def test_conflict_on_stale_replace(control_plane: ControlPlane, namespace: str) -> None:
    cp, ns = control_plane, namespace
    cp.kubectl("create", "configmap", "cfg", "-n", ns, "--from-literal=a=1")
    stale = cp.kubectl("get", "configmap", "cfg", "-n", ns, "-o", "yaml").stdout
    cp.kubectl("label", "configmap", "cfg", "-n", ns, "touched=yes")
    refused = cp.kubectl("replace", "-f", "-", input=stale, check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        'Error from server (Conflict): error when replacing "STDIN": Operation cannot be '
        'fulfilled on configmaps "cfg": the object has been modified; please apply your '
        "changes to the latest version and try again"
    )


def test_invalid_port(control_plane: ControlPlane, namespace: str) -> None:
    bad = web_service("x")
    bad["spec"]["ports"][0]["port"] = 70000
    refused = control_plane.kubectl(
        "create", "-n", namespace, "-f", "-", input=manifest(bad), check=False
    )
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        'The Service "x" is invalid: spec.ports[0].port: Invalid value: 70000: '
        "must be between 1 and 65535, inclusive"
    )


def test_unknown_field_under_strict_validation(control_plane: ControlPlane, namespace: str) -> None:
    typo = web_service("typo")
    typo["spec"]["selectr"] = typo["spec"].pop("selector")
    refused = control_plane.kubectl(
        "apply", "-n", namespace, "-f", "-", input=manifest(typo), check=False
    )
    assert refused.returncode == 1
    assert 'strict decoding error: unknown field "spec.selectr"' in refused.stderr
    gone = control_plane.kubectl("get", "svc", "typo", "-n", namespace, check=False)
    assert "NotFound" in gone.stderr


# ------------------------------------------------------------------ typed creates


def test_typed_creates_and_scale(control_plane: ControlPlane, namespace: str) -> None:
    cp, ns = control_plane, namespace
    created = [
        cp.kubectl("create", "deployment", "web", "--image=nginx", "-n", ns).stdout,
        cp.kubectl("create", "service", "clusterip", "web", "--tcp=80:8080", "-n", ns).stdout,
        cp.kubectl("create", "configmap", "cfg", "--from-literal=a=b", "-n", ns).stdout,
    ]
    assert [c.strip() for c in created] == [
        "deployment.apps/web created",
        "service/web created",
        "configmap/cfg created",
    ]
    svc = get_json(cp, "-n", ns, "service", "web")
    assert svc["spec"]["ports"][0]["targetPort"] == 8080
    assert svc["spec"]["selector"] == {"app": "web"}
    assert get_json(cp, "-n", ns, "configmap", "cfg")["data"] == {"a": "b"}

    out = cp.kubectl("scale", "deployment", "web", "--replicas=3", "-n", ns).stdout
    assert out.strip() == "deployment.apps/web scaled"
    deploy = get_json(cp, "-n", ns, "deployment", "web")
    assert deploy["spec"]["replicas"] == 3
    assert deploy["metadata"]["generation"] == 2


def test_service_accounts_and_their_tokens(control_plane: ControlPlane, namespace: str) -> None:
    """Every namespace gets its `default` account and the cluster CA; `kubectl create
    token` asks the TokenRequest API (a protobuf body) for a token that kubectl can then
    use, until its account is deleted."""
    cp, ns = control_plane, namespace  # the fixture waited for both to appear
    assert get_json(cp, "-n", ns, "serviceaccount", "default")["metadata"]["name"] == "default"
    root_ca = get_json(cp, "-n", ns, "configmap", "kube-root-ca.crt")
    assert root_ca["data"] == {"ca.crt": (cp.lab.home / "pki" / "ca.crt").read_text()}

    assert cp.kubectl("create", "sa", "robot", "-n", ns).stdout.strip() == (
        "serviceaccount/robot created"
    )
    token = cp.kubectl("create", "token", "robot", "-n", ns, "--duration=15m").stdout.strip()
    as_robot = cp.kubectl("--token", token, "get", "sa", "-n", ns, "-o", "name").stdout
    assert sorted(as_robot.split()) == ["serviceaccount/default", "serviceaccount/robot"]
    short = cp.kubectl("create", "token", "robot", "-n", ns, "--duration=1m", check=False)
    assert short.returncode != 0
    assert "may not specify a duration less than 10 minutes" in short.stderr
    missing = cp.kubectl("create", "token", "nobody", "-n", ns, check=False)
    assert 'serviceaccounts "nobody" not found' in missing.stderr

    cp.kubectl("delete", "sa", "robot", "-n", ns)
    deadline = time.monotonic() + 20
    while (
        "Unauthorized"
        not in cp.kubectl("--token", token, "get", "sa", "-n", ns, check=False).stderr
    ):
        assert time.monotonic() < deadline, "the deleted account's token still works"
        time.sleep(0.5)


def test_create_namespace(control_plane: ControlPlane) -> None:
    name = f"ns-{time.monotonic_ns() % 10**8}"
    out = control_plane.kubectl("create", "namespace", name).stdout
    try:
        assert out.strip() == f"namespace/{name} created"
        assert get_json(control_plane, "namespace", name)["status"]["phase"] == "Active"
    finally:
        control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


# ------------------------------------------------------------------ the guide


def guide_manifests() -> list[str]:
    """The YAML blocks of the Service guide that define a Service, verbatim."""
    text = GUIDE.read_text()
    blocks = [b.split("\n", 1)[1].split("```")[0] for b in text.split("```y")[1:]]
    return [b for b in blocks if "kind: Service" in b]


def test_the_guides_manifests_apply_as_written(fresh_control_plane: ControlPlane) -> None:
    cp = fresh_control_plane
    node_port, external = guide_manifests()
    assert "nodePort: 30000" in node_port and "ExternalName" in external

    assert cp.kubectl("apply", "-f", "-", input=node_port).stdout.strip() == (
        "service/test-service created"
    )
    rows = table(cp.kubectl("get", "svc", "test-service").stdout)
    assert rows[1][1:2] + rows[1][3:5] == ["NodePort", "<none>", "80:30000/TCP"]

    cp.kubectl("create", "namespace", "test")
    assert cp.kubectl("apply", "-f", "-", input=external).stdout.strip() == (
        "service/test-service created"
    )
    rows = table(cp.kubectl("get", "svc", "test-service", "-n", "test").stdout)
    assert rows[1][:5] == ["test-service", "ExternalName", "<none>", "test.service.com", "<none>"]
    assert cp.kubectl("apply", "-f", "-", input=external).stdout.strip() == (
        "service/test-service unchanged"
    )


def test_metrics_count_requests_by_verb_and_resource(
    control_plane: ControlPlane, namespace: str
) -> None:
    cp, ns = control_plane, namespace
    cp.kubectl("create", "-n", ns, "-f", "-", input=manifest(config_map("counted")))
    cp.kubectl("get", "configmap", "counted", "-n", ns)
    cp.kubectl("get", "configmaps", "-n", ns)
    text = cp.kubectl("get", "--raw", "/metrics").stdout
    counted = {
        line.split("}")[0] + "}"
        for line in text.splitlines()
        if line.startswith("apiserver_request_total{")
    }
    for verb in ("POST", "GET", "LIST"):
        assert (
            f'apiserver_request_total{{verb="{verb}",resource="configmaps",'
            f'subresource="",code="{201 if verb == "POST" else 200}"}}'
        ) in counted
    assert not any("counted" in series for series in counted)  # no object names
