"""Service account tokens of projected volumes (agent.tokens): the TokenRequest a source
makes, when a token is asked for again, the token manager's cache on a scripted API
client and clock, and the pod syncer's volumes waiting for a token and following its
refresh."""

from __future__ import annotations

import copy
import types
from pathlib import Path
from typing import Any, cast

import pytest

from agent.pods import PodState, PodSyncer
from agent.tokens import (
    REFRESH_FRACTION,
    Token,
    TokenError,
    TokenKey,
    TokenManager,
    expired,
    needs_refresh,
    request_path,
    retry_delay,
    token_of,
    token_request,
    token_sources,
)
from agent.volumes import DATA_DIR, read_current
from minikube_py.api.serviceaccounts import token_volume
from minikube_py.client import ApiException, Client
from minikube_py.informer import Informer

POD = {
    "metadata": {"name": "web-0", "namespace": "shop", "uid": "u-1"},
    "spec": {
        "serviceAccountName": "builder",
        "containers": [{"name": "main", "image": "busybox"}],
        "volumes": [token_volume("x7k2p")],
    },
}
SOURCE = {"path": "token", "expirationSeconds": 3607}
NOT_FOUND = {
    "kind": "Status",
    "status": "Failure",
    "message": 'serviceaccounts "default" not found',
    "reason": "NotFound",
    "code": 404,
}


def answer(token: str, seconds: int | None = 3607) -> dict[str, Any]:
    spec: dict[str, Any] = {"audiences": []}
    if seconds is not None:
        spec["expirationSeconds"] = seconds
    return {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": "2026-01-01T11:00:07Z"},
    }


class ScriptedClient:
    """Answers each request with the next of `script` (an Exception is raised)."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.requests: list[tuple[str, str, Any]] = []

    async def request(self, method: str, path: str, body: Any = None, **_: Any) -> Any:
        self.requests.append((method, path, copy.deepcopy(body)))
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def manager(*script: Any) -> tuple[TokenManager, ScriptedClient, Clock]:
    client, clock = ScriptedClient(*script), Clock()
    return TokenManager(cast(Client, client), clock), client, clock


# --- pure ----------------------------------------------------------------------------------


def test_the_token_request_is_the_kubelets() -> None:
    key, body = token_request(POD, SOURCE)
    assert key == TokenKey("shop", "builder", (), 3607, "u-1")
    assert request_path(key) == "/api/v1/namespaces/shop/serviceaccounts/builder/token"
    assert body == {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": [],
            "expirationSeconds": 3607,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web-0", "uid": "u-1"},
        },
    }


def test_an_audience_is_asked_for_and_the_lifetime_defaults_to_an_hour() -> None:
    pod = {"metadata": POD["metadata"], "spec": {}}  # no account named: `default`
    key, body = token_request(pod, {"path": "vault", "audience": "vault"})
    assert key == TokenKey("shop", "default", ("vault",), 3600, "u-1")
    assert body["spec"]["audiences"] == ["vault"]
    assert body["spec"]["expirationSeconds"] == 3600
    assert request_path(key) == "/api/v1/namespaces/shop/serviceaccounts/default/token"


def test_token_sources_are_those_of_a_projected_volume() -> None:
    assert token_sources(token_volume("x7k2p")) == [{"expirationSeconds": 3607, "path": "token"}]
    assert token_sources({"name": "c", "configMap": {"name": "cm"}}) == []


def test_a_token_is_refreshed_at_80_percent_of_its_lifetime_and_expires_at_its_end() -> None:
    token = Token("t", issued_at=1000.0, lifetime=3600.0)
    assert REFRESH_FRACTION == 0.8
    assert token.refresh_at == 1000.0 + 2880.0
    assert not needs_refresh(token, 1000.0 + 2879.9)
    assert needs_refresh(token, 1000.0 + 2880.0)
    assert not expired(token, 1000.0 + 3599.9)
    assert expired(token, 1000.0 + 3600.0)


def test_the_lifetime_is_the_answers_else_the_one_asked_for() -> None:
    key, _ = token_request(POD, SOURCE)
    shortened = token_of(answer("t", seconds=600), key, 50.0)
    assert shortened == Token("t", 50.0, 600.0, "2026-01-01T11:00:07Z")
    assert token_of(answer("t", seconds=None), key, 50.0).lifetime == 3607.0
    with pytest.raises(ValueError, match="no token"):
        token_of({"status": {}}, key, 50.0)


def test_retry_delay_doubles_from_half_a_second_to_eight() -> None:
    assert [retry_delay(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


# --- the manager -------------------------------------------------------------------------------


async def test_a_token_is_cached_until_due_then_asked_for_again() -> None:
    tokens, client, clock = manager(answer("first"), answer("second"))
    volume = token_volume("x7k2p")
    assert await tokens.volume_tokens(POD, volume) == {"token": b"first"}
    path = "/api/v1/namespaces/shop/serviceaccounts/builder/token"
    assert [(m, p) for m, p, _ in client.requests] == [("POST", path)]
    clock.now += 0.8 * 3607 - 1
    assert await tokens.volume_tokens(POD, volume) == {"token": b"first"}
    assert len(client.requests) == 1
    clock.now += 1
    assert await tokens.volume_tokens(POD, volume) == {"token": b"second"}
    assert len(client.requests) == 2
    assert client.requests[1][2]["spec"]["boundObjectRef"]["uid"] == "u-1"


async def test_each_audience_lifetime_and_pod_has_its_own_token() -> None:
    tokens, client, _ = manager(*(answer(f"t{i}") for i in range(4)))
    other_pod = {**POD, "metadata": {**POD["metadata"], "name": "web-1", "uid": "u-2"}}
    for pod, source in [
        (POD, SOURCE),
        (POD, {**SOURCE, "audience": "vault"}),
        (POD, {**SOURCE, "expirationSeconds": 600}),
        (other_pod, SOURCE),
        (POD, SOURCE),  # cached
    ]:
        await tokens.get(*token_request(pod, source))
    assert len(client.requests) == 4
    tokens.forget("u-1")
    assert [key.pod_uid for key in tokens.cached()] == ["u-2"]


async def test_a_missing_account_fails_with_the_kubelets_message() -> None:
    tokens, _, _ = manager(ApiException(404, NOT_FOUND), answer("t"))
    with pytest.raises(TokenError) as failure:
        await tokens.volume_tokens(POD, token_volume("x7k2p"))
    assert str(failure.value) == 'failed to fetch token: serviceaccounts "default" not found'
    assert tokens.cached() == {}
    assert await tokens.volume_tokens(POD, token_volume("x7k2p")) == {"token": b"t"}


async def test_a_failed_refresh_keeps_the_old_token_until_it_expires() -> None:
    unavailable = ApiException(503, {"kind": "Status", "message": "etcd is unavailable"})
    tokens, client, clock = manager(answer("old"), unavailable, OSError("refused"), answer("new"))
    key_and_body = token_request(POD, SOURCE)
    assert await tokens.get(*key_and_body) == "old"
    clock.now += 0.9 * 3607
    assert await tokens.get(*key_and_body) == "old"  # 503: kept
    clock.now += 0.1 * 3607
    expired_message = r"^token of shop/builder expired and refresh failed: refused$"
    with pytest.raises(TokenError, match=expired_message):
        await tokens.get(*key_and_body)
    assert await tokens.get(*key_and_body) == "new"
    assert len(client.requests) == 4


async def test_a_failure_without_a_status_says_what_went_wrong() -> None:
    tokens, _, _ = manager(TimeoutError(), ApiException(502, {"message": "bad gateway"}))
    with pytest.raises(TokenError, match=r"^failed to fetch token: TimeoutError$"):
        await tokens.get(*token_request(POD, SOURCE))
    with pytest.raises(TokenError, match=r"^failed to fetch token: bad gateway$"):
        await tokens.get(*token_request(POD, SOURCE))


# --- the pod syncer's volumes ----------------------------------------------------------------


def syncer(tmp_path: Path, tokens: TokenManager, events: list[tuple[str, str]]) -> PodSyncer:
    """A syncer whose informers hold the root CA ConfigMap, that writes volumes under
    `tmp_path`; only its volume step is used."""
    client = cast(Client, None)
    config_maps = Informer(client, "ConfigMap")
    config_maps.cache["shop/kube-root-ca.crt"] = {
        "kind": "ConfigMap",
        "metadata": {"name": "kube-root-ca.crt", "namespace": "shop"},
        "data": {"ca.crt": "C"},
    }
    runtime = types.SimpleNamespace(pod_dir=lambda uid: tmp_path / "pods" / uid)
    return PodSyncer(
        client,
        cast(Any, runtime),
        cast(Any, None),
        cast(Any, None),
        Informer(client, "Pod"),
        Informer(client, "Service"),
        config_maps,
        Informer(client, "Secret"),
        node_name="n1",
        node_ip="192.168.49.2",
        dns_ip="10.96.0.10",
        host_resolv_conf="",
        record_event=lambda _pod, _type, reason, message, _path: events.append((reason, message)),
        tokens=tokens,
    )


async def test_a_pod_waits_for_its_account_and_follows_the_refreshed_token(
    tmp_path: Path,
) -> None:
    tokens, _, clock = manager(
        ApiException(404, NOT_FOUND), ApiException(404, NOT_FOUND), answer("t1"), answer("t2")
    )
    events: list[tuple[str, str]] = []
    pods = syncer(tmp_path, tokens, events)
    state = PodState("shop/web-0")
    directory = tmp_path / "pods" / "u-1" / "volumes" / "kube-api-access-x7k2p"
    try:
        # the account is missing: no volume, the kubelet's event (once), a quick retry
        assert await pods._step(POD, state, []) == 0.5
        assert await pods._step(POD, state, []) == 1.0
        assert events == [
            (
                "FailedMount",
                'MountVolume.SetUp failed for volume "kube-api-access-x7k2p" : '
                'failed to fetch token: serviceaccounts "default" not found',
            )
        ]
        assert not (directory / DATA_DIR).exists()
        # it appeared
        assert await pods._sync_volumes(POD, state) == {"kube-api-access-x7k2p": directory}
        assert state.token_failures == 0 and not state.volume_errors
        assert read_current(directory) == {
            "token": (b"t1", 0o644),
            "ca.crt": (b"C", 0o644),
            "namespace": (b"shop", 0o644),
        }
        first = (directory / DATA_DIR).readlink()
        await pods._sync_volumes(POD, state)  # the periodic resync: nothing due
        assert (directory / DATA_DIR).readlink() == first
        clock.now += 0.8 * 3607  # the periodic resync once 80% has passed: a new token
        await pods._sync_volumes(POD, state)
        assert read_current(directory)["token"] == (b"t2", 0o644)
        assert (directory / DATA_DIR).readlink() != first
    finally:
        pods.stop()
    assert len(tokens.cached()) == 1
