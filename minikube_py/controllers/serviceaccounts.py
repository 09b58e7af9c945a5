"""The two per-namespace objects service accounts rely on, kept as kube-controller-manager
keeps them: the ServiceAccount `default` (kube's serviceaccount-controller) and the
ConfigMap `kube-root-ca.crt` with the cluster CA (kube's root-ca-cert-publisher).

Both are level-triggered over namespace keys: a namespace appearing or changing, or an
event of the object kept (its deletion; for the ConfigMap also an edit), enqueues the
namespace, and the reconcile writes whatever the caches show missing or wrong. A
namespace being terminated is left alone: the namespace controller is emptying it and
the apiserver refuses new content there (403 NamespaceTerminating). A create that loses
a race with the namespace's termination or removal (403 NamespaceTerminating, 404), or
an account create that meets one the cache has not shown yet (409 AlreadyExists), is
logged at debug and dropped. An edited ConfigMap is put back by an update at the
resourceVersion observed; a conflict is retried by the queue (`Controller`).

The publisher watches only ConfigMaps named `kube-root-ca.crt` (`metadata.name` field
selector), with an informer of its own started with its workers: the shared informers
are one unfiltered informer per kind. Its CA text comes from `--root-ca-file` (option
`root_ca`); without it the publisher watches nothing and writes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from minikube_py.api.serviceaccounts import DEFAULT_ACCOUNT, ROOT_CA_CONFIGMAP, ROOT_CA_KEY
from minikube_py.api.types import Obj
from minikube_py.client import ApiException
from minikube_py.controllers.common import Controller, ignore_missing
from minikube_py.informer import Informer

log = logging.getLogger(__name__)

DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using "
    "internal endpoints such as the internal service IP or kubernetes.default.svc. No "
    "other usage is guaranteed across distributions of Kubernetes clusters."
)
NAMESPACE_TERMINATING = "NamespaceTerminating"  # the StatusCause of such a 403


def terminating(ns: Obj) -> bool:
    return bool(
        ns["metadata"].get("deletionTimestamp")
        or (ns.get("status") or {}).get("phase") == "Terminating"
    )


def namespace_refused(e: ApiException) -> bool:
    """A create refused because its namespace is gone (404) or being terminated (403
    with the NamespaceTerminating cause): nothing to retry."""
    if e.code == 404:
        return True
    causes = (e.status.get("details") or {}).get("causes") or []
    return e.code == 403 and any(c.get("reason") == NAMESPACE_TERMINATING for c in causes)


def root_ca_config_map(namespace: str, ca: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": ROOT_CA_CONFIGMAP,
            "namespace": namespace,
            "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION},
        },
        "data": {ROOT_CA_KEY: ca},
    }


def restored_root_ca(cm: Obj, ca: str) -> Obj | None:
    """The update that puts an existing `kube-root-ca.crt` back, or None when it is in
    order. As kube's publisher: `data` must be exactly the CA (other keys go), the
    description annotation must be there; the rest of the object (its resourceVersion
    included) is kept."""
    md = cm["metadata"]
    annotations = md.get("annotations") or {}
    data = {ROOT_CA_KEY: ca}
    if cm.get("data") == data and annotations.get(DESCRIPTION_ANNOTATION):
        return None
    return {
        **cm,
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {**md, "annotations": {**annotations, DESCRIPTION_ANNOTATION: DESCRIPTION}},
        "data": data,
    }


class _PerNamespace(Controller):
    """A controller keyed by namespace: each one not being terminated is queued."""

    def _watch_namespaces(self) -> None:
        self.namespaces = self.informers["Namespace"]
        self.namespaces.add_handler(self._on_namespace)

    def _on_namespace(self, type_: str, ns: Obj, old: Obj | None) -> None:
        if type_ != "DELETED" and not terminating(ns):
            self.enqueue(ns["metadata"]["name"])

    def enqueue_all(self) -> None:
        for name, ns in self.namespaces.cache.items():
            if not terminating(ns):
                self.enqueue(name)


class ServiceAccountsController(_PerNamespace):
    """Every namespace not being terminated has the ServiceAccount `default`."""

    name = "serviceaccount"
    workers = 2

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._watch_namespaces()
        self.accounts = self.informers["ServiceAccount"]
        self.accounts.add_handler(self._on_account)

    def _on_account(self, type_: str, sa: Obj, old: Obj | None) -> None:
        md = sa["metadata"]
        if type_ == "DELETED" and md["name"] == DEFAULT_ACCOUNT:
            self.enqueue(md["namespace"])

    async def reconcile(self, name: str) -> None:
        ns = self.namespaces.get(name)
        if ns is None or terminating(ns):
            return
        if self.accounts.get(f"{name}/{DEFAULT_ACCOUNT}") is not None:
            return
        account = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": DEFAULT_ACCOUNT, "namespace": name},
        }
        try:
            await self.client.create(account)
        except ApiException as e:
            if e.code == 409 or namespace_refused(e):
                log.debug("not creating serviceaccount %s/%s: %s", name, DEFAULT_ACCOUNT, e)
                return
            raise
        log.debug("created serviceaccount %s/%s", name, DEFAULT_ACCOUNT)


class RootCACertPublisher(_PerNamespace):
    """Every namespace not being terminated has the ConfigMap `kube-root-ca.crt` with
    the cluster CA (`root_ca`, the PEM text of `--root-ca-file`)."""

    name = "root-ca-cert-publisher"
    workers = 2

    def __init__(self, *args: Any, root_ca: str = "", **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.root_ca = root_ca
        self.config_maps: Informer | None = None
        if not root_ca:
            log.info("%s is disabled: no --root-ca-file", self.name)
            return
        self._watch_namespaces()
        self.config_maps = Informer(
            self.client, "ConfigMap", field_selector=f"metadata.name={ROOT_CA_CONFIGMAP}"
        )
        self.config_maps.add_handler(self._on_config_map)

    def _on_config_map(self, type_: str, cm: Obj, old: Obj | None) -> None:
        md = cm["metadata"]
        if md["name"] == ROOT_CA_CONFIGMAP:
            self.enqueue(md["namespace"])

    async def run(self) -> None:
        if self.config_maps is None:
            await asyncio.Event().wait()  # disabled: idle as long as the others run
            return
        self.config_maps.start()
        try:
            await self.config_maps.synced.wait()
            await super().run()
        finally:
            await self.config_maps.stop()

    async def reconcile(self, name: str) -> None:
        assert self.config_maps is not None  # no keys are queued while disabled
        ns = self.namespaces.get(name)
        if ns is None or terminating(ns):
            return
        cm = self.config_maps.get(f"{name}/{ROOT_CA_CONFIGMAP}")
        if cm is None:
            try:
                await self.client.create(root_ca_config_map(name, self.root_ca))
            except ApiException as e:
                if namespace_refused(e):
                    log.debug("not creating configmap %s/%s: %s", name, ROOT_CA_CONFIGMAP, e)
                    return
                raise  # 409: one the cache has not shown yet, compared once it has
            log.debug("created configmap %s/%s", name, ROOT_CA_CONFIGMAP)
            return
        fixed = restored_root_ca(cm, self.root_ca)
        if fixed is None:
            return
        log.info("restoring configmap %s/%s", name, ROOT_CA_CONFIGMAP)
        await ignore_missing(self.client.update(fixed))  # 404: its deletion enqueues
