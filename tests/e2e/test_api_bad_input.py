"""Bad input against the real apiserver and etcd: a clear `Status`, never a crash, and
the stored object untouched.

Raw bodies go through the client's own HTTP session, since the client encodes only
valid JSON. YAML for server-side apply is read as the JSON kube's YAML-to-JSON step
gives (non-string keys become strings), so what kubectl would send as YAML lands as it
would on kube-apiserver.
"""

from __future__ import annotations

from typing import Any

from minikube_py.client import Client
from tests.conftest import ControlPlane


async def send(c: Client, method: str, path: str, body: bytes, content_type: str) -> Any:
    async with c.session.request(
        method, path, data=body, headers={"Content-Type": content_type}
    ) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_bad_bodies_get_a_status_and_lose_nothing(
    control_plane: ControlPlane, namespace: str
) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    apply = f"{base}/settings?fieldManager=test"
    async with control_plane.client() as c:
        kept = await c.create(
            {"kind": "ConfigMap", "metadata": {"name": "settings", "namespace": namespace},
             "data": {"mode": "fast"}}
        )  # fmt: skip
        refused = [
            ("POST", base, b'{"metadata": {"name": "x"', "application/json", 400),
            ("PUT", f"{base}/settings", b"[1, 2]", "application/json", 400),
            ("PUT", f"{base}/settings", b'{"data": NaN}', "application/json", 400),
            ("PATCH", f"{base}/settings", b"{oops", "application/merge-patch+json", 400),
            # an integer past 64 bits: nothing in the Kubernetes API holds one
            (
                "PATCH",
                apply,
                b"data: {n: 1180591620717411303424}",
                "application/apply-patch+yaml",
                400,
            ),
            ("PATCH", apply, b"data: [unclosed", "application/apply-patch+yaml", 400),
            ("POST", base, b" " * (3 * 1024 * 1024 + 1), "application/json", 413),
        ]
        for method, path, body, content_type, code in refused:
            status, answer = await send(c, method, path, body, content_type)
            assert (status, answer["kind"], answer["code"]) == (code, "Status", code), (
                body[:40],
                answer,
            )
        current = await c.get("ConfigMap", "settings", namespace)
        assert current["data"] == {"mode": "fast"}
        assert current["metadata"]["resourceVersion"] == kept["metadata"]["resourceVersion"]

        # YAML beyond JSON: an integer key and a date become strings, as on kube
        yaml_body = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n" + (
            b"data: {1: one, day: 2024-01-31}\n"
        )
        status, applied = await send(c, "PATCH", apply, yaml_body, "application/apply-patch+yaml")
        assert status == 200, applied
        assert applied["data"] == {"1": "one", "day": "2024-01-31", "mode": "fast"}
