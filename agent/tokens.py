"""Service account tokens for projected volumes, as the kubelet's token manager gets them.

A `serviceAccountToken` source of a projected volume shows a token of the pod's
account bound to the pod. The token comes from the TokenRequest API,

    POST /api/v1/namespaces/<pod namespace>/serviceaccounts/<spec.serviceAccountName>/token
    {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
     "spec": {"audiences": [audience] or [], "expirationSeconds": N,
              "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": ..., "uid": ...}}}

and is cached per (namespace, account, audiences, expirationSeconds, pod uid), as the
kubelet's. A cached token is asked for again once REFRESH_FRACTION of its lifetime has
passed since it was requested, by the agent's clock; while the new one cannot be had,
the old one is kept until it expires. A deleted pod's tokens are forgotten.

The pure parts (the request a source makes, the token an answer gives, when to refresh,
the retry delay of a pod waiting for a token) are module functions; `TokenManager` is
the adapter, on the agent's API client. `agent.pods` fetches a volume's tokens before
it lays the volume out, so `agent.volumes.volume_files` stays pure: it gets them as a
mapping, path in the volume -> token.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

import aiohttp

from agent.volumes import VolumeError
from minikube_py.api.resources import BY_KIND
from minikube_py.api.serviceaccounts import DEFAULT_ACCOUNT, TOKEN_SECONDS_DEFAULT
from minikube_py.api.types import Obj, name_of, namespace_of
from minikube_py.client import ApiException, Client, resource_path

log = logging.getLogger(__name__)

REFRESH_FRACTION = 0.8
"""The share of a token's lifetime after which it is asked for again (the kubelet's)."""
RETRY_FIRST_SECONDS = 0.5
RETRY_CAP_SECONDS = 8.0
"""A pod waiting for a token is synced again after 0.5 s, 1 s, 2 s, ... up to 8 s (the
kubelet's volume operations back off from 500 ms, doubling); no informer tells the agent
when a ServiceAccount appears. The periodic resync (agent.pods.HOUSEKEEPING_SECONDS)
comes on top."""
REQUEST_TIMEOUT_SECONDS = 10.0


class TokenError(VolumeError):
    """A token cannot be had: the volume cannot be set up (the message is the kubelet's)."""


@dataclasses.dataclass(frozen=True)
class TokenKey:
    """What a cached token is for (the kubelet's cache key)."""

    namespace: str
    account: str
    audiences: tuple[str, ...]
    expiration_seconds: int
    pod_uid: str


@dataclasses.dataclass(frozen=True)
class Token:
    token: str
    issued_at: float  # the agent's clock when it was asked for
    lifetime: float  # seconds
    expiration: str = ""  # the answer's status.expirationTimestamp, as it was given

    @property
    def refresh_at(self) -> float:
        return self.issued_at + REFRESH_FRACTION * self.lifetime

    @property
    def expires_at(self) -> float:
        return self.issued_at + self.lifetime


def needs_refresh(token: Token, now: float) -> bool:
    """Whether REFRESH_FRACTION of the token's lifetime has passed."""
    return now >= token.refresh_at


def expired(token: Token, now: float) -> bool:
    return now >= token.expires_at


def retry_delay(failures: int) -> float:
    """Seconds before a pod whose token could not be had `failures` times in a row is
    synced again."""
    return min(RETRY_CAP_SECONDS, RETRY_FIRST_SECONDS * 2 ** max(0, failures - 1))


def token_sources(volume: Obj) -> list[Obj]:
    """The `serviceAccountToken` sources of a (projected) volume."""
    projected = volume.get("projected") or {}
    return [
        entry["serviceAccountToken"]
        for entry in projected.get("sources") or []
        if "serviceAccountToken" in entry
    ]


def token_request(pod: Obj, source: Obj) -> tuple[TokenKey, Obj]:
    """The cache key and the TokenRequest of one `serviceAccountToken` source of `pod`."""
    spec = pod.get("spec") or {}
    account = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or DEFAULT_ACCOUNT)
    audience = str(source.get("audience") or "")
    audiences = [audience] if audience else []
    seconds = int(source.get("expirationSeconds") or TOKEN_SECONDS_DEFAULT)
    uid = str(pod.get("metadata", {}).get("uid", ""))
    key = TokenKey(namespace_of(pod), account, tuple(audiences), seconds, uid)
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": audiences,
            "expirationSeconds": seconds,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": name_of(pod), "uid": uid},
        },
    }
    return key, body


def request_path(key: TokenKey) -> str:
    """/api/v1/namespaces/<namespace>/serviceaccounts/<account>/token"""
    return resource_path(BY_KIND["ServiceAccount"], key.namespace, key.account, "token")


def token_of(answer: Obj, key: TokenKey, issued_at: float) -> Token:
    """The token a TokenRequest's answer carries; its lifetime is the answer's
    `spec.expirationSeconds` (the apiserver may shorten it), else the one asked for.
    ValueError when the answer has no token."""
    status = answer.get("status") or {}
    token = status.get("token")
    if not isinstance(token, str) or not token:
        raise ValueError("the TokenRequest's answer carries no token")
    seconds = (answer.get("spec") or {}).get("expirationSeconds")
    lifetime = seconds if isinstance(seconds, int) and seconds > 0 else key.expiration_seconds
    return Token(token, issued_at, float(lifetime), str(status.get("expirationTimestamp") or ""))


def failure_reason(error: BaseException) -> str:
    """What an API error says (its Status message: `serviceaccounts "default" not found`)."""
    if isinstance(error, ApiException):
        return str(error.status.get("message") or error)
    return str(error) or type(error).__name__


class TokenManager:
    """The tokens of this node's pods: cached, refreshed once due, forgotten with the pod."""

    def __init__(self, client: Client, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.clock = clock
        self._cache: dict[TokenKey, Token] = {}

    async def volume_tokens(self, pod: Obj, volume: Obj) -> dict[str, bytes]:
        """The tokens a volume shows, by their path in it (what `volume_files` takes);
        TokenError when one cannot be had."""
        tokens = {}
        for source in token_sources(volume):
            key, body = token_request(pod, source)
            tokens[str(source.get("path", ""))] = (await self.get(key, body)).encode()
        return tokens

    async def get(self, key: TokenKey, body: Obj) -> str:
        """The cached token, or a new one once it is due (the kubelet's
        GetServiceAccountToken): a refresh that fails keeps the old token until it
        expires."""
        now = self.clock()
        cached = self._cache.get(key)
        if cached is not None and not needs_refresh(cached, now):
            return cached.token
        try:
            answer = await self.client.request(
                "POST", request_path(key), body, timeout=REQUEST_TIMEOUT_SECONDS
            )
            fresh = token_of(answer, key, now)
        except (ApiException, aiohttp.ClientError, TimeoutError, OSError, ValueError) as error:
            reason = failure_reason(error)
            if cached is None:
                raise TokenError(f"failed to fetch token: {reason}") from error
            if expired(cached, now):
                raise TokenError(
                    f"token of {key.namespace}/{key.account} expired and refresh failed: {reason}"
                ) from error
            log.warning("could not refresh the token of %s: %s", key, reason)
            return cached.token
        self._store(key, fresh)
        return fresh.token

    def forget(self, pod_uid: str) -> None:
        """Drop the tokens bound to a pod that is gone."""
        for key in [k for k in self._cache if k.pod_uid == pod_uid]:
            del self._cache[key]

    def cached(self) -> dict[TokenKey, Token]:
        return dict(self._cache)

    def _store(self, key: TokenKey, token: Token) -> None:
        """Keep `token`, dropping expired ones (a pod torn down while its token was
        being fetched would leave one behind)."""
        now = self.clock()
        for stale in [k for k, t in self._cache.items() if expired(t, now)]:
            del self._cache[stale]
        self._cache[key] = token
