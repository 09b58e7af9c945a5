"""Service account tokens and the ServiceAccount admission, on the in-memory store.

The issuer's JWTs (claims, signature, audience, lifetime), the TokenRequest's validation
and answers (kube's errors for a missing account, pod, uid or account mismatch), the
authentication of a token against what it is bound to, and the token volume that pod
creation mounts (or not: automountServiceAccountToken on the pod or its account).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from apiserver import tokens
from apiserver.errors import ApiError
from apiserver.registry import ClusterConfig, Registry, WriteOptions
from apiserver.storage import MemoryStore
from apiserver.tokens import ServiceAccountTokens, TokenIssuer, token_request_errors
from minikube_py.api import serviceaccounts
from minikube_py.api.resources import BY_KIND
from minikube_py.api.types import Obj

NS, SA, POD = BY_KIND["Namespace"], BY_KIND["ServiceAccount"], BY_KIND["Pod"]
NOW = datetime.datetime(2026, 11, 29, 12, 0, tzinfo=datetime.UTC)


def key_pem() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


ACCOUNT = {"metadata": {"name": "builder", "namespace": "ci", "uid": "sa-uid"}}
POD_OBJ = {"metadata": {"name": "job-1", "namespace": "ci", "uid": "pod-uid"}}


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


# --- the issuer ------------------------------------------------------------------------


def test_a_bound_token_carries_kubes_claims_and_verifies() -> None:
    issuer = TokenIssuer(key_pem())
    token, expires = issuer.issue(ACCOUNT, [], 3600, POD_OBJ, NOW)
    assert expires == NOW + datetime.timedelta(hours=1)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "system:serviceaccount:ci:builder"
    assert claims["aud"] == [tokens.ISSUER] and claims["iss"] == tokens.ISSUER
    assert claims["exp"] - claims["iat"] == 3600 and claims["nbf"] == claims["iat"]
    assert claims["kubernetes.io"] == {
        "namespace": "ci",
        "serviceaccount": {"name": "builder", "uid": "sa-uid"},
        "pod": {"name": "job-1", "uid": "pod-uid"},
    }
    assert jwt.get_unverified_header(token)["kid"] == issuer.key_id
    assert TokenIssuer(key_pem()).verify(token) is None  # signed when issued, not now
    fresh, _ = issuer.issue(ACCOUNT, [], 3600, POD_OBJ, now())
    assert issuer.verify(fresh) == tokens.TokenClaims("ci", "builder", "sa-uid", "job-1", "pod-uid")


def test_tokens_of_another_key_audience_or_lifetime_are_refused() -> None:
    issuer = TokenIssuer(key_pem())
    good, _ = issuer.issue(ACCOUNT, [], 600, None, now())
    assert issuer.verify(good) is not None
    assert TokenIssuer(key_pem()).verify(good) is None
    header, payload, signature = good.split(".")
    tampered = f"{header}.{payload[:-2]}AA.{signature}"
    assert issuer.verify(tampered) is None
    for_vault, _ = issuer.issue(ACCOUNT, ["vault"], 600, None, now())
    assert issuer.verify(for_vault) is None
    expired, _ = issuer.issue(ACCOUNT, [], 600, None, now() - datetime.timedelta(hours=1))
    assert issuer.verify(expired) is None
    future, _ = issuer.issue(ACCOUNT, [], 600, None, now() + datetime.timedelta(hours=1))
    assert issuer.verify(future) is None
    assert TokenIssuer(key_pem(), issuer="https://elsewhere").verify(good) is None
    assert issuer.verify("admintoken") is None


def test_a_key_that_is_not_ec_is_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="EC"):
        from cryptography.hazmat.primitives.asymmetric import ed25519

        TokenIssuer(
            ed25519.Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


@pytest.mark.parametrize(
    ("spec", "fields"),
    [
        ({}, []),
        ({"expirationSeconds": 600, "audiences": ["a"]}, []),
        ({"expirationSeconds": 599}, ["spec.expirationSeconds"]),
        ({"expirationSeconds": 2**32 + 1}, ["spec.expirationSeconds"]),
        ({"expirationSeconds": True}, ["spec.expirationSeconds"]),
        ({"audiences": "a"}, ["spec.audiences"]),
        ({"boundObjectRef": {"kind": "Secret", "name": "s"}}, ["spec.boundObjectRef.kind"]),
        ({"boundObjectRef": {"kind": "Pod"}}, ["spec.boundObjectRef.name"]),
    ],
)
def test_token_request_validation(spec: Obj, fields: list[str]) -> None:
    assert [e.field for e in token_request_errors(spec)] == fields


# --- TokenRequest and authentication over the registry -------------------------------


@pytest.fixture
async def registry() -> Registry:
    reg = Registry(MemoryStore(), ClusterConfig("10.96.0.0/16", (30000, 32767)))
    await reg.create(NS, "", {"metadata": {"name": "ci"}}, WriteOptions())
    return reg


async def make_account(registry: Registry, name: str = "builder", **fields: object) -> Obj:
    return await registry.create(SA, "ci", {"metadata": {"name": name}, **fields}, WriteOptions())


async def make_pod(registry: Registry, name: str, spec: Obj | None = None) -> Obj:
    body = {
        "metadata": {"name": name},
        "spec": spec or {"containers": [{"name": "c", "image": "i"}]},
    }
    return await registry.create(POD, "ci", body, WriteOptions())


async def test_token_request_answers_and_its_token_authenticates_until_unbound(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = ServiceAccountTokens(registry, TokenIssuer(key_pem()))
    with pytest.raises(ApiError) as missing:
        await service.request("ci", "builder", {"spec": {}})
    assert (missing.value.code, missing.value.message) == (
        404,
        'serviceaccounts "builder" not found',
    )
    account = await make_account(registry)
    pod = await make_pod(
        registry,
        "job-1",
        {"serviceAccountName": "builder", "containers": [{"name": "c", "image": "i"}]},
    )
    answer = await service.request(
        "ci",
        "builder",
        {"spec": {"boundObjectRef": {"kind": "Pod", "name": "job-1"}, "expirationSeconds": 900}},
    )
    assert answer["kind"] == "TokenRequest"
    assert answer["apiVersion"] == "authentication.k8s.io/v1"
    assert answer["spec"] == {
        "audiences": [tokens.ISSUER],
        "expirationSeconds": 900,
        "boundObjectRef": {
            "kind": "Pod",
            "apiVersion": "v1",
            "name": "job-1",
            "uid": pod["metadata"]["uid"],
        },
    }
    token = answer["status"]["token"]
    claims = await service.authenticate(token)
    assert claims is not None and claims.account_uid == account["metadata"]["uid"]
    assert claims.pod_uid == pod["metadata"]["uid"]

    monkeypatch.setattr(tokens, "BINDING_CHECK_SECONDS", 0.0)
    await registry.delete(POD, "ci", "job-1", {"gracePeriodSeconds": 0})
    assert await service.authenticate(token) is None  # its pod is gone

    unbound = (await service.request("ci", "builder", {"spec": {}}))["status"]["token"]
    assert await service.authenticate(unbound) is not None
    await registry.delete(SA, "ci", "builder", {})
    await make_account(registry)  # same name, another uid
    assert await service.authenticate(unbound) is None


async def test_token_request_refuses_a_pod_of_another_uid_or_account(registry: Registry) -> None:
    service = ServiceAccountTokens(registry, TokenIssuer(key_pem()))
    await make_account(registry)
    await make_account(registry, "other")
    await make_pod(
        registry,
        "job-1",
        {"serviceAccountName": "other", "containers": [{"name": "c", "image": "i"}]},
    )
    with pytest.raises(ApiError) as wrong_account:
        await service.request(
            "ci", "builder", {"spec": {"boundObjectRef": {"kind": "Pod", "name": "job-1"}}}
        )
    assert wrong_account.value.code == 400
    assert "different serviceaccount name" in wrong_account.value.message
    with pytest.raises(ApiError) as wrong_uid:
        await service.request(
            "ci",
            "other",
            {"spec": {"boundObjectRef": {"kind": "Pod", "name": "job-1", "uid": "stale"}}},
        )
    assert wrong_uid.value.code == 409
    with pytest.raises(ApiError) as invalid:
        await service.request("ci", "other", {"spec": {"expirationSeconds": 60}})
    assert invalid.value.code == 422
    assert invalid.value.message == (
        'TokenRequest.authentication.k8s.io "other" is invalid: spec.expirationSeconds: '
        "Invalid value: 60: may not specify a duration less than 10 minutes"
    )


# --- ServiceAccount admission ----------------------------------------------------------


def token_mounts(pod: Obj) -> list[str]:
    """Containers (init ones too) mounting the token path, and from which volume."""
    spec = pod["spec"]
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    found = []
    for c in [*(spec.get("initContainers") or []), *spec["containers"]]:
        for m in c.get("volumeMounts") or []:
            if m["mountPath"] == serviceaccounts.MOUNT_PATH:
                found.append(
                    f"{c['name']}:{'projected' if 'projected' in volumes[m['name']] else 'own'}"
                )
    return found


async def test_pods_mount_their_accounts_token_unless_told_not_to(registry: Registry) -> None:
    def two() -> Obj:  # an init container and a container, fresh for every create
        return {
            "initContainers": [{"name": "init", "image": "i"}],
            "containers": [{"name": "c", "image": "i"}],
        }

    pod = await make_pod(registry, "plain", two())  # `default` not made yet: let through
    assert token_mounts(pod) == ["init:projected", "c:projected"]
    (volume,) = pod["spec"]["volumes"]
    assert volume["name"].startswith("kube-api-access-") and len(volume["name"]) == 21
    assert volume == serviceaccounts.token_volume(volume["name"].removeprefix("kube-api-access-"))
    assert pod["spec"]["serviceAccountName"] == "default"

    opted_out = await make_pod(registry, "off", {**two(), "automountServiceAccountToken": False})
    assert token_mounts(opted_out) == [] and "volumes" not in opted_out["spec"]

    await make_account(registry, "quiet", automountServiceAccountToken=False)
    quiet = await make_pod(registry, "quiet", {**two(), "serviceAccountName": "quiet"})
    assert token_mounts(quiet) == []
    loud = await make_pod(
        registry,
        "loud",
        {**two(), "serviceAccountName": "quiet", "automountServiceAccountToken": True},
    )
    assert token_mounts(loud) == ["init:projected", "c:projected"]

    own = {
        "volumes": [{"name": "mine", "emptyDir": {}}],
        "containers": [
            {
                "name": "c",
                "image": "i",
                "volumeMounts": [{"name": "mine", "mountPath": serviceaccounts.MOUNT_PATH}],
            },
            {"name": "d", "image": "i"},
        ],
    }
    mixed = await make_pod(registry, "own", own)
    assert token_mounts(mixed) == ["c:own", "d:projected"]


async def test_a_pod_of_a_missing_account_is_forbidden(registry: Registry) -> None:
    with pytest.raises(ApiError) as refused:
        await make_pod(
            registry,
            "ghostly",
            {"serviceAccountName": "ghost", "containers": [{"name": "c", "image": "i"}]},
        )
    assert (refused.value.code, refused.value.reason) == (403, "Forbidden")
    assert refused.value.message == (
        'pods "ghostly" is forbidden: error looking up service account ci/ghost: '
        'serviceaccount "ghost" not found'
    )
    with pytest.raises(ApiError):
        await registry.get(POD, "ci", "ghostly")


async def test_projected_token_lifetimes_are_defaulted_and_checked(registry: Registry) -> None:
    def spec(seconds: int | None) -> Obj:
        token: Obj = {"path": "t"}
        if seconds is not None:
            token["expirationSeconds"] = seconds
        return {
            "automountServiceAccountToken": False,
            "volumes": [{"name": "v", "projected": {"sources": [{"serviceAccountToken": token}]}}],
            "containers": [{"name": "c", "image": "i"}],
        }

    pod = await make_pod(registry, "defaulted", spec(None))
    source = pod["spec"]["volumes"][0]["projected"]["sources"][0]
    assert source == {"serviceAccountToken": {"path": "t", "expirationSeconds": 3600}}
    with pytest.raises(ApiError) as short:
        await make_pod(registry, "short", spec(60))
    assert short.value.code == 422
    assert short.value.details is not None
    assert short.value.details["causes"][0]["field"] == (
        "spec.volumes[0].projected.sources[0].serviceAccountToken.expirationSeconds"
    )


async def test_admission_reads_accounts_from_the_cache_once_it_has_them(
    registry: Registry,
) -> None:
    caches = asyncio.ensure_future(registry.run_caches())
    try:
        await make_account(registry, "quiet", automountServiceAccountToken=False)
        key = registry.key(SA, "ci", "quiet")
        for _ in range(100):
            if registry.service_accounts.get(key) is not None:
                break
            await asyncio.sleep(0.01)
        reads: list[str] = []
        live_get = registry.get

        async def counted_get(res: Any, namespace: str, name: str) -> Obj:
            reads.append(res.kind)
            return await live_get(res, namespace, name)

        registry.get = counted_get  # type: ignore[method-assign]
        spec = {"serviceAccountName": "quiet", "containers": [{"name": "c", "image": "i"}]}
        pod = await make_pod(registry, "cached", spec)
        assert token_mounts(pod) == [] and reads == []
        await make_pod(registry, "live", {"containers": [{"name": "c", "image": "i"}]})
        assert reads == ["ServiceAccount"]  # `default` is in no cache: read live
    finally:
        caches.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await caches
