"""Service account tokens: kube's bound JWTs (ES256), issued and checked by the apiserver.

`TokenIssuer` signs and verifies: a token carries the claims kube-apiserver puts in a
bound token (`iss`, `sub`, `aud`, `exp`, `iat`, `nbf`, `jti`, and `kubernetes.io` naming
the namespace, the account and the pod with their uids), and `verify` checks signature,
issuer, audience and lifetime. `ServiceAccountTokens` serves the TokenRequest
subresource (`POST .../serviceaccounts/NAME/token`) and authenticates a presented token:
verified, and what it is bound to still there (the account with that uid, the pod if
any), read through the registry and taken as true for a few seconds, as kube's validator
reads its informer caches; so deleting an account or a pod revokes its tokens.
There is no authorization: an authenticated account may do what the admin may.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import time
import uuid
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from apiserver.errors import ApiError, bad_request, conflict, invalid
from apiserver.registry import Registry
from minikube_py.api.resources import BY_KIND
from minikube_py.api.serviceaccounts import DEFAULT_ACCOUNT, TOKEN_SECONDS_DEFAULT, subject
from minikube_py.api.timestamps import rfc3339
from minikube_py.api.types import Obj
from minikube_py.api.validation import FieldError, not_supported, required, token_seconds_errors
from minikube_py.api.validation import invalid as invalid_field

ISSUER = "https://kubernetes.default.svc.cluster.local"
ALGORITHM = "ES256"
# a token's account and pod, once found, are taken as still there for this long
BINDING_CHECK_SECONDS = 10.0
BINDING_CACHE_MAX = 4096


@dataclass(frozen=True)
class TokenClaims:
    """What a valid token says of its holder."""

    namespace: str
    account: str
    account_uid: str
    pod: str = ""
    pod_uid: str = ""

    @property
    def user(self) -> str:
        return subject(self.namespace, self.account)


class TokenIssuer:
    def __init__(self, key_pem: bytes, issuer: str = ISSUER) -> None:
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the service account signing key must be an EC (P-256) key")
        self._key = key
        self._public = key.public_key()
        self.issuer = issuer
        self.audiences = (issuer,)  # what a request naming no audience gets, and accepted
        der = self._public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.key_id = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")

    def issue(
        self,
        account: Obj,
        audiences: list[str],
        seconds: int,
        pod: Obj | None,
        now: datetime.datetime,
    ) -> tuple[str, datetime.datetime]:
        """The token of `account` (bound to `pod` if given) and when it expires."""
        md = account["metadata"]
        expires = now + datetime.timedelta(seconds=seconds)
        private: Obj = {
            "namespace": md["namespace"],
            "serviceaccount": {"name": md["name"], "uid": md["uid"]},
        }
        if pod is not None:
            private["pod"] = {"name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}
        claims = {
            "aud": audiences or list(self.audiences),
            "exp": int(expires.timestamp()),
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "iss": self.issuer,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": private,
            "sub": subject(md["namespace"], md["name"]),
        }
        token = jwt.encode(claims, self._key, ALGORITHM, headers={"kid": self.key_id})
        return token, expires.replace(microsecond=0)

    def verify(self, token: str) -> TokenClaims | None:
        """The claims of a token this issuer made for one of its audiences, within its
        lifetime by this machine's clock; None for anything else."""
        try:
            claims = jwt.decode(
                token,
                self._public,
                algorithms=[ALGORITHM],
                audience=list(self.audiences),
                issuer=self.issuer,
                options={"require": ["exp", "nbf", "sub", "aud", "iss"]},
            )
        except jwt.PyJWTError:
            return None
        private = claims.get("kubernetes.io")
        if not isinstance(private, dict):
            return None
        account = private.get("serviceaccount") or {}
        pod = private.get("pod") or {}
        result = TokenClaims(
            namespace=str(private.get("namespace", "")),
            account=str(account.get("name", "")),
            account_uid=str(account.get("uid", "")),
            pod=str(pod.get("name", "")),
            pod_uid=str(pod.get("uid", "")),
        )
        if claims["sub"] != result.user or not result.account_uid:
            return None
        return result


def token_request_errors(spec: Obj) -> list[FieldError]:
    """Validation of a TokenRequest's spec, as kube's."""
    errors = token_seconds_errors(
        spec.get("expirationSeconds", TOKEN_SECONDS_DEFAULT), "spec.expirationSeconds"
    )
    audiences = spec.get("audiences") or []
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        errors.append(invalid_field("spec.audiences", audiences, "must be a list of strings"))
    ref = spec.get("boundObjectRef")
    if ref is None:
        return errors
    if not isinstance(ref, dict) or ref.get("kind") != "Pod":
        kind = ref.get("kind") if isinstance(ref, dict) else ref
        errors.append(not_supported("spec.boundObjectRef.kind", kind, ["Pod"]))
    elif not ref.get("name"):
        errors.append(required("spec.boundObjectRef.name"))
    return errors


class ServiceAccountTokens:
    """The TokenRequest subresource and the authentication of its tokens."""

    def __init__(self, registry: Registry, issuer: TokenIssuer) -> None:
        self.registry = registry
        self.issuer = issuer
        self._checked: dict[TokenClaims, float] = {}  # claims -> when found still bound

    async def request(self, namespace: str, name: str, body: Obj) -> Obj:
        """The answer to `POST serviceaccounts/NAME/token`: the TokenRequest, filled."""
        spec = body.get("spec")
        if not isinstance(spec, dict):
            raise bad_request("the TokenRequest must have a spec")
        errors = token_request_errors(spec)
        if errors:
            raise invalid(
                BY_KIND["ServiceAccount"],
                name,
                f'TokenRequest.authentication.k8s.io "{name}" is invalid: '
                + ", ".join(map(str, errors)),
                [{"reason": e.reason, "message": e.message, "field": e.field} for e in errors],
            )
        account = await self.registry.get(BY_KIND["ServiceAccount"], namespace, name)
        pod = None
        ref = spec.get("boundObjectRef")
        if ref is not None:
            pods = BY_KIND["Pod"]
            pod = await self.registry.get(pods, namespace, ref["name"])
            if ref.get("uid") and ref["uid"] != pod["metadata"]["uid"]:
                raise conflict(
                    pods,
                    ref["name"],
                    f"the UID in the bound object reference ({ref['uid']}) does not match "
                    f"the UID in record. The object might have been deleted and then "
                    f"recreated",
                )
            if (pod.get("spec") or {}).get("serviceAccountName", DEFAULT_ACCOUNT) != name:
                raise bad_request(
                    f'cannot bind token for serviceaccount "{name}" to pod running with '
                    f"different serviceaccount name."
                )
        seconds = spec.get("expirationSeconds", TOKEN_SECONDS_DEFAULT)
        audiences = list(spec.get("audiences") or self.issuer.audiences)
        now = datetime.datetime.now(datetime.UTC)
        token, expires = self.issuer.issue(account, audiences, seconds, pod, now)
        answer_spec: Obj = {"audiences": audiences, "expirationSeconds": seconds}
        if pod is not None:
            md = pod["metadata"]
            answer_spec["boundObjectRef"] = {
                "kind": "Pod",
                "apiVersion": "v1",
                "name": md["name"],
                "uid": md["uid"],
            }
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
            "spec": answer_spec,
            "status": {"token": token, "expirationTimestamp": rfc3339(expires)},
        }

    async def authenticate(self, token: str) -> TokenClaims | None:
        """The claims of a valid token whose account (and pod) still exist, same uids."""
        claims = self.issuer.verify(token)
        if claims is None:
            return None
        checked = self._checked.get(claims)
        if checked is not None and time.monotonic() - checked < BINDING_CHECK_SECONDS:
            return claims
        if not await self._still_bound(claims):
            self._checked.pop(claims, None)
            return None
        if len(self._checked) >= BINDING_CACHE_MAX:
            self._checked.clear()
        self._checked[claims] = time.monotonic()
        return claims

    async def _still_bound(self, claims: TokenClaims) -> bool:
        bound = [("ServiceAccount", claims.account, claims.account_uid)]
        if claims.pod:
            bound.append(("Pod", claims.pod, claims.pod_uid))
        for kind, name, uid in bound:
            try:
                obj = await self.registry.get(BY_KIND[kind], claims.namespace, name)
            except ApiError as e:
                if e.code == 404:
                    return False
                raise
            if obj["metadata"]["uid"] != uid:
                return False
        return True
