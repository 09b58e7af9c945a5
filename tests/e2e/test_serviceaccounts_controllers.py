"""The serviceaccount controller and the root-ca-cert-publisher.

Against the real apiserver and etcd: the lab's controller-manager keeps the
ServiceAccount `default` in every namespace (and puts it back once deleted); a
controller-manager started here with only the publisher and `--root-ca-file` (the
cluster CA) publishes `kube-root-ca.crt`, and puts it back once deleted or edited; a
namespace being terminated gets neither back, and its deletion still completes.

Without a control plane (a client that records calls, caches filled by hand): the
reconciles leave a terminating namespace alone, drop creates the namespace refuses,
and the publisher without `--root-ca-file` subscribes to nothing and writes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from minikube_py.api.serviceaccounts import DEFAULT_ACCOUNT, ROOT_CA_CONFIGMAP, ROOT_CA_KEY
from minikube_py.client import ApiException, Client
from minikube_py.controllers.__main__ import manager_config, parse_args
from minikube_py.controllers.common import Informers
from minikube_py.controllers.manager import CONTROLLERS
from minikube_py.controllers.serviceaccounts import (
    RootCACertPublisher,
    ServiceAccountsController,
    restored_root_ca,
)
from minikube_py.controllers.simnode import eventually
from tests.conftest import ControlPlane

DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters."
)
HOLD = "minikube-py.test/hold"  # a finalizer nobody removes but the test


def ca_file(cp: ControlPlane) -> Path:
    return cp.lab.home / "pki" / "ca.crt"


@pytest.fixture(scope="module")
def publisher(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A controller-manager running only the publisher, with the cluster CA (no leader
    election: it runs beside the lab's manager). Yields its log."""
    log = tmp_path_factory.mktemp("publisher") / "controller-manager.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "minikube_py.controllers",
                "--kubeconfig",
                str(control_plane.lab.admin_kubeconfig),
                "--controllers",
                "root-ca-cert-publisher",
                "--root-ca-file",
                str(ca_file(control_plane)),
                "-v",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_default_service_account_in_every_namespace(
    control_plane: ControlPlane, namespace: str
) -> None:
    assert CONTROLLERS["serviceaccount"] is ServiceAccountsController
    async with control_plane.client() as c:
        first = await eventually(
            lambda: c.get("ServiceAccount", DEFAULT_ACCOUNT, namespace), what="default account"
        )
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            await eventually(
                lambda ns=ns: c.get("ServiceAccount", DEFAULT_ACCOUNT, ns), what=f"{ns}'s account"
            )
        await c.delete("ServiceAccount", DEFAULT_ACCOUNT, namespace)

        async def recreated() -> dict | None:
            sa = await c.get("ServiceAccount", DEFAULT_ACCOUNT, namespace)
            return sa if sa["metadata"]["uid"] != first["metadata"]["uid"] else None

        await eventually(recreated, what="the default account back after its deletion")


def assert_published(cm: dict, ca: str) -> None:
    assert cm["data"] == {ROOT_CA_KEY: ca}
    assert cm["metadata"]["annotations"]["kubernetes.io/description"] == DESCRIPTION


async def test_root_ca_published_and_put_back(
    control_plane: ControlPlane, namespace: str, publisher: Path
) -> None:
    assert CONTROLLERS["root-ca-cert-publisher"] is RootCACertPublisher
    ca = ca_file(control_plane).read_text()
    assert ca.startswith("-----BEGIN CERTIFICATE-----")
    async with control_plane.client() as c:
        first = await eventually(
            lambda: c.get("ConfigMap", ROOT_CA_CONFIGMAP, namespace),
            timeout=30,  # the publisher's process is starting
            what="kube-root-ca.crt published",
        )
        assert_published(first, ca)

        await c.delete("ConfigMap", ROOT_CA_CONFIGMAP, namespace)

        async def recreated() -> dict | None:
            cm = await c.get("ConfigMap", ROOT_CA_CONFIGMAP, namespace)
            return cm if cm["metadata"]["uid"] != first["metadata"]["uid"] else None

        back = await eventually(recreated, what="kube-root-ca.crt back after its deletion")
        assert_published(back, ca)

        edited = await c.update(
            {
                **back,
                "metadata": {**back["metadata"], "annotations": {"mine": "yes"}},
                "data": {ROOT_CA_KEY: "not a CA", "extra": "x"},
            }
        )
        edit_rv = edited["metadata"]["resourceVersion"]

        async def restored() -> dict | None:
            cm = await c.get("ConfigMap", ROOT_CA_CONFIGMAP, namespace)
            changed = cm["metadata"]["resourceVersion"] != edit_rv
            return cm if changed and cm["data"] == {ROOT_CA_KEY: ca} else None

        fixed = await eventually(restored, what="kube-root-ca.crt restored after an edit")
        assert_published(fixed, ca)
        assert fixed["metadata"]["uid"] == back["metadata"]["uid"]  # updated, not replaced
        assert fixed["metadata"]["annotations"]["mine"] == "yes"  # only its own keys change
    assert "Traceback" not in publisher.read_text()


async def _gone(c: Client, ns: str) -> bool:
    try:
        await c.get("Namespace", ns)
    except ApiException as e:
        if e.code == 404:
            return True
        raise
    return False


async def test_nothing_comes_back_in_a_terminating_namespace(
    control_plane: ControlPlane, namespace: str, publisher: Path
) -> None:
    doomed = "term-" + uuid.uuid4().hex[:8]
    async with control_plane.client() as c:
        await c.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": doomed}})
        try:
            hold = {"name": "hold", "namespace": doomed, "finalizers": [HOLD]}
            await c.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": hold})
            kept = (("ServiceAccount", DEFAULT_ACCOUNT), ("ConfigMap", ROOT_CA_CONFIGMAP))
            for kind, name in kept:
                await eventually(lambda k=kind, n=name: c.get(k, n, doomed), timeout=30, what=name)
                await eventually(lambda k=kind, n=name: c.get(k, n, namespace), timeout=30)
            await c.delete("Namespace", doomed)

            async def left(ns: str) -> set[tuple[str, str]]:
                return {
                    (kind, i["metadata"]["name"])
                    for kind in ("ServiceAccount", "ConfigMap")
                    for i in (await c.list(kind, ns))["items"]
                }

            async def emptied() -> bool:  # all but the held ConfigMap deleted
                return await left(doomed) == {("ConfigMap", "hold")}

            await eventually(emptied, what="the namespace controller emptying the namespace")
            # Deletions made after those, in an open namespace, are undone: the
            # controllers have seen the earlier ones too by then.
            await c.delete("ServiceAccount", DEFAULT_ACCOUNT, namespace)
            await c.delete("ConfigMap", ROOT_CA_CONFIGMAP, namespace)

            async def both_back() -> bool:
                return {("ServiceAccount", DEFAULT_ACCOUNT), ("ConfigMap", ROOT_CA_CONFIGMAP)} <= (
                    await left(namespace)
                )

            await eventually(both_back, what="the open namespace's objects back")
            assert await emptied()
            ns = await c.get("Namespace", doomed)
            assert ns["status"]["phase"] == "Terminating"
        finally:
            await c.patch("ConfigMap", "hold", {"metadata": {"finalizers": None}}, doomed)
            if not await _gone(c, doomed):
                await c.delete("Namespace", doomed)
        await eventually(lambda: _gone(c, doomed), timeout=30, what="the namespace removed")
    failed = f"{doomed!r} failed"  # WorkQueue's log of a reconcile that raised
    assert failed not in publisher.read_text()
    assert failed not in control_plane.lab.log_path("controller-manager").read_text()


# ---------------------------------------------------------------- no control plane

PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"


class RecordingClient:
    """What the controllers call on a client, recorded; `fail` is raised by writes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.fail: ApiException | None = None

    def __getattr__(self, verb: str) -> Any:
        async def call(*args: Any, **kw: Any) -> dict:
            self.calls.append((verb, args))
            if self.fail is not None:
                raise self.fail
            return {}

        return call


def ns_obj(name: str, terminating: bool = False) -> dict:
    if terminating:
        return {
            "metadata": {"name": name, "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"phase": "Terminating"},
        }
    return {"metadata": {"name": name}, "status": {"phase": "Active"}}


def both(client: RecordingClient) -> tuple[ServiceAccountsController, RootCACertPublisher]:
    informers = Informers(client)  # type: ignore[arg-type]  # never started
    sa = ServiceAccountsController(client, informers, None)  # type: ignore[arg-type]
    pub = RootCACertPublisher(client, informers, None, root_ca=PEM)  # type: ignore[arg-type]
    for ns in (ns_obj("open"), ns_obj("doomed", terminating=True)):
        informers["Namespace"]._store(ns["metadata"]["name"], ns, None)
    return sa, pub


async def test_terminating_namespaces_are_left_alone() -> None:
    client = RecordingClient()
    sa, pub = both(client)
    gone = {"metadata": {"name": DEFAULT_ACCOUNT, "namespace": "doomed"}}
    sa.accounts._emit("DELETED", gone, gone)
    sa.namespaces._emit("MODIFIED", ns_obj("doomed", terminating=True), ns_obj("doomed"))
    assert len(sa.queue) == 1 and len(pub.queue) == 0  # the account's deletion only
    for name in ("doomed", "missing"):
        await sa.reconcile(name)
        await pub.reconcile(name)
    assert client.calls == []
    await sa.reconcile("open")
    await pub.reconcile("open")
    created = [(args[0]["kind"], args[0]["metadata"]) for verb, args in client.calls]
    assert [verb for verb, _ in client.calls] == ["create", "create"]
    assert created[0] == ("ServiceAccount", {"name": DEFAULT_ACCOUNT, "namespace": "open"})
    assert created[1][0] == "ConfigMap" and created[1][1]["namespace"] == "open"
    assert client.calls[1][1][0]["data"] == {ROOT_CA_KEY: PEM}


def refusal(code: int, reason: str, cause: str = "") -> ApiException:
    details = {"causes": [{"reason": cause}]} if cause else {}
    return ApiException(code, {"reason": reason, "details": details})


async def test_creates_the_namespace_refuses_are_dropped() -> None:
    client = RecordingClient()
    sa, pub = both(client)
    for error in (
        refusal(403, "Forbidden", "NamespaceTerminating"),
        refusal(404, "NotFound"),
    ):
        client.fail = error
        await sa.reconcile("open")  # the cache was behind the namespace's termination
        await pub.reconcile("open")
    client.fail = refusal(409, "AlreadyExists")
    await sa.reconcile("open")  # an account is an account: nothing to compare
    with pytest.raises(ApiException):  # requeued, and compared once the cache has it
        await pub.reconcile("open")
    client.fail = refusal(403, "Forbidden")  # not the namespace's doing: an error
    with pytest.raises(ApiException):
        await sa.reconcile("open")
    with pytest.raises(ApiException):
        await pub.reconcile("open")


def test_only_the_root_ca_data_and_description_are_put_back() -> None:
    good = {
        "metadata": {
            "name": ROOT_CA_CONFIGMAP,
            "namespace": "a",
            "resourceVersion": "7",
            "annotations": {"kubernetes.io/description": DESCRIPTION, "mine": "x"},
        },
        "data": {ROOT_CA_KEY: PEM},
    }
    assert restored_root_ca(good, PEM) is None
    for bad in (
        {**good, "data": {ROOT_CA_KEY: "edited"}},
        {**good, "data": {ROOT_CA_KEY: PEM, "extra": "x"}},
        {**good, "data": None},
        {**good, "metadata": {**good["metadata"], "annotations": {"mine": "x"}}},
    ):
        fixed = restored_root_ca(bad, PEM)
        assert fixed is not None
        assert fixed["data"] == good["data"]
        assert fixed["metadata"] == good["metadata"]  # resourceVersion kept: a conflict is seen
        assert fixed["kind"] == "ConfigMap" and fixed["apiVersion"] == "v1"


async def test_no_publisher_without_the_flag(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    options = manager_config(parse_args(["--kubeconfig", "k"])).options
    assert options["root_ca"] == ""
    client = RecordingClient()
    informers = Informers(client)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="minikube_py.controllers.serviceaccounts"):
        publisher = RootCACertPublisher(client, informers, None, **options)  # type: ignore[arg-type]
        with pytest.raises(TimeoutError):  # idles beside the others, never returns
            await asyncio.wait_for(publisher.run(), 0.2)
    assert list(informers.all()) == [] and publisher.config_maps is None  # watches nothing
    assert client.calls == []
    assert [r.getMessage() for r in caplog.records] == [
        "root-ca-cert-publisher is disabled: no --root-ca-file"
    ]

    # With the flag: the file's text reaches the publisher, which watches namespaces
    # and only the ConfigMaps of its name.
    path = tmp_path / "ca.crt"
    path.write_text(PEM)
    options = manager_config(parse_args(["--kubeconfig", "k", "--root-ca-file", str(path)])).options
    assert options["root_ca"] == PEM
    publisher = RootCACertPublisher(client, informers, None, **options)  # type: ignore[arg-type]
    assert [i.kind for i in informers.all()] == ["Namespace"]
    assert publisher.config_maps is not None
    assert publisher.config_maps.field_selector == f"metadata.name={ROOT_CA_CONFIGMAP}"
    path.write_text("no certificate here")
    with pytest.raises(SystemExit):
        manager_config(parse_args(["--kubeconfig", "k", "--root-ca-file", str(path)]))
