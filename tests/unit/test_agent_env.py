"""A container's environment (agent.env) and `$(VAR)` expansion, against the kubelet's
semantics: golden cases and properties."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.env import PodFacts, container_env, field_ref_value, resource_field_value, service_env
from agent.runtime import RuntimeFailure, expand
from minikube_py.api.types import Obj


def service(ns: str, name: str, ip: str, *ports: tuple[str, int, str]) -> dict:
    return {
        "metadata": {"namespace": ns, "name": name},
        "spec": {
            "clusterIP": ip,
            "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports],
        },
    }


# --- environment ---------------------------------------------------------------------


def test_service_env_golden() -> None:
    services = [
        service("default", "kubernetes", "10.96.0.1", ("https", 443, "TCP")),
        service("app", "redis-primary", "10.96.0.11", ("", 6379, "TCP"), ("metrics", 9121, "TCP")),
        service("app", "headless", "None", ("", 80, "TCP")),
        service("other", "elsewhere", "10.96.0.12", ("", 80, "TCP")),
    ]
    env = service_env(services, "app")
    assert env == {
        "KUBERNETES_SERVICE_HOST": "10.96.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "443",
        "KUBERNETES_PORT": "tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP": "tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
        "KUBERNETES_PORT_443_TCP_PORT": "443",
        "KUBERNETES_PORT_443_TCP_ADDR": "10.96.0.1",
        "REDIS_PRIMARY_SERVICE_HOST": "10.96.0.11",
        "REDIS_PRIMARY_SERVICE_PORT": "6379",
        "REDIS_PRIMARY_SERVICE_PORT_METRICS": "9121",
        "REDIS_PRIMARY_PORT": "tcp://10.96.0.11:6379",
        "REDIS_PRIMARY_PORT_6379_TCP": "tcp://10.96.0.11:6379",
        "REDIS_PRIMARY_PORT_6379_TCP_PROTO": "tcp",
        "REDIS_PRIMARY_PORT_6379_TCP_PORT": "6379",
        "REDIS_PRIMARY_PORT_6379_TCP_ADDR": "10.96.0.11",
        "REDIS_PRIMARY_PORT_9121_TCP": "tcp://10.96.0.11:9121",
        "REDIS_PRIMARY_PORT_9121_TCP_PROTO": "tcp",
        "REDIS_PRIMARY_PORT_9121_TCP_PORT": "9121",
        "REDIS_PRIMARY_PORT_9121_TCP_ADDR": "10.96.0.11",
    }


def test_service_links_off_keeps_only_the_kubernetes_service() -> None:
    services = [
        service("default", "kubernetes", "10.96.0.1", ("https", 443, "TCP")),
        service("app", "web", "10.96.0.5", ("", 80, "TCP")),
    ]
    env = service_env(services, "app", enable_links=False)
    assert "WEB_SERVICE_HOST" not in env and env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"


# --- $(VAR) expansion ------------------------------------------------------------------

VARS = {"VAR_A": "A", "VAR_B": "B", "VAR_C": "$(VAR_A)", "VAR_EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("$(VAR_A)", "A"),
        ("___$(VAR_B)___", "___B___"),
        ("$(VAR_A)$(VAR_B)", "AB"),
        ("$(VAR_C)", "$(VAR_A)"),  # a value is never expanded again
        ("$(VAR_EMPTY)x", "x"),
        ("$(VAR_DNE)", "$(VAR_DNE)"),
        ("$$(VAR_A)", "$(VAR_A)"),
        ("$$$(VAR_A)", "$A"),
        ("$$$$(VAR_A)", "$$(VAR_A)"),
        ("$VAR_A", "$VAR_A"),
        ("$", "$"),
        ("$$", "$"),
        ("$$$", "$$"),
        ("x$", "x$"),
        ("$(VAR_A", "$(VAR_A"),
        ("$(VAR_A)-$(VAR_B", "A-$(VAR_B"),
        ("$($(VAR_A)", "$($(VAR_A)"),  # the name runs to the first `)`
        ("$()", "$()"),
        ("f000-$$VAR_A", "f000-$VAR_A"),
    ],
)
def test_expand_golden(text: str, expanded: str) -> None:
    assert expand(text, VARS) == expanded


def test_expand_looks_names_up_in_order() -> None:
    assert expand("$(X)$(Y)", {"X": "first"}, {"X": "second", "Y": "y"}) == "firsty"


def scan(text: str, env: dict[str, str]) -> str:
    """An independent model: the cursor walk of Kubernetes' expansion.Expand."""
    out, cursor = [], 0
    while cursor < len(text):
        char = text[cursor]
        if char != "$" or cursor + 1 == len(text):
            out.append(char)
            cursor += 1
            continue
        following = text[cursor + 1]
        if following == "$":
            out.append("$")
            cursor += 2
        elif following == "(":
            close = text.find(")", cursor + 2)
            if close < 0:
                out.append("$(")
                cursor += 2
            else:
                name = text[cursor + 2 : close]
                out.append(env.get(name, f"$({name})"))
                cursor = close + 1
        else:
            out.append("$" + following)
            cursor += 2
    return "".join(out)


texts = st.text(alphabet="$()AB x", max_size=30)
envs = st.dictionaries(st.sampled_from(["A", "B", "", "A B", "$(A"]), texts, max_size=4)


@given(texts, envs)
def test_expand_matches_the_cursor_model(text: str, env: dict[str, str]) -> None:
    assert expand(text, env) == scan(text, env)


@given(st.text(max_size=40), envs)
def test_an_escaped_text_expands_to_itself(text: str, env: dict[str, str]) -> None:
    assert expand(text.replace("$", "$$"), env) == text


@given(st.text(max_size=40).filter(lambda t: "$" not in t), envs)
def test_text_without_dollar_is_unchanged(text: str, env: dict[str, str]) -> None:
    assert expand(text, env) == text


@given(
    st.from_regex(re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,8}"), fullmatch=True), st.text(max_size=20)
)
def test_a_defined_reference_becomes_its_value_verbatim(name: str, value: str) -> None:
    assert expand(f"<$({name})>", {name: value}) == f"<{value}>"


# --- the downward API ------------------------------------------------------------------

FACTS = PodFacts(("10.244.1.5",), ("192.168.49.2",), {"cpu": "2", "memory": "2048Ki"})
POD: Obj = {
    "metadata": {
        "name": "web-1",
        "namespace": "app",
        "uid": "uid-1",
        "labels": {"tier": "front"},
        "annotations": {"owner": "team-a"},
    },
    "spec": {
        "nodeName": "n1",
        "serviceAccountName": "builder",
        "containers": [
            {
                "name": "main",
                "resources": {
                    "limits": {"cpu": "250m", "memory": "64Mi"},
                    "requests": {"cpu": "250m", "memory": "32Mi"},
                },
            },
            {"name": "side", "resources": {}},
        ],
    },
}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("metadata.name", "web-1"),
        ("metadata.namespace", "app"),
        ("metadata.uid", "uid-1"),
        ("metadata.labels['tier']", "front"),
        ("metadata.labels['absent']", ""),
        ("metadata.annotations['owner']", "team-a"),
        ("spec.nodeName", "n1"),
        ("spec.serviceAccountName", "builder"),
        ("status.podIP", "10.244.1.5"),
        ("status.podIPs", "10.244.1.5"),
        ("status.hostIP", "192.168.49.2"),
        ("status.hostIPs", "192.168.49.2"),
    ],
)
def test_field_ref_values(path: str, value: str) -> None:
    assert field_ref_value(POD, path, FACTS) == value


def test_field_ref_lists_join_with_commas() -> None:
    facts = PodFacts(("10.244.1.5", "fd00::5"), ("192.168.49.2",))
    assert field_ref_value(POD, "status.podIPs", facts) == "10.244.1.5,fd00::5"
    with pytest.raises(RuntimeFailure, match="unsupported fieldPath"):
        field_ref_value(POD, "status.phase", facts)


@pytest.mark.parametrize(
    ("container", "ref", "value"),
    [
        ("main", {"resource": "limits.cpu"}, "1"),  # 250m rounds up to 1 CPU
        ("main", {"resource": "limits.cpu", "divisor": "1m"}, "250"),
        ("main", {"resource": "requests.cpu", "divisor": "100m"}, "3"),
        ("main", {"resource": "limits.memory"}, str(64 * 2**20)),
        ("main", {"resource": "limits.memory", "divisor": "1Mi"}, "64"),
        ("main", {"resource": "requests.memory", "divisor": "1M"}, "34"),  # 33.55 up
        ("main", {"resource": "limits.memory", "divisor": "0"}, str(64 * 2**20)),
        ("side", {"resource": "limits.cpu"}, "2"),  # no limit: the node's allocatable
        ("side", {"resource": "limits.memory", "divisor": "1Ki"}, "2048"),
        ("side", {"resource": "requests.memory"}, "0"),
        ("side", {"resource": "limits.cpu", "containerName": "main", "divisor": "1m"}, "250"),
    ],
)
def test_resource_field_values(container: str, ref: Obj, value: str) -> None:
    spec = next(c for c in POD["spec"]["containers"] if c["name"] == container)
    assert resource_field_value(POD, spec, ref, FACTS) == value


# --- container_env -----------------------------------------------------------------------


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


OBJECTS: dict[tuple[str, str], Obj] = {
    ("ConfigMap", "base"): {"data": {"MODE": "base", "LEVEL": "1", "1BAD": "x", "ok.key": "y"}},
    ("ConfigMap", "more"): {"data": {"LEVEL": "2"}},
    ("ConfigMap", "single"): {"data": {"url": "http://$(HOST)"}},
    ("Secret", "creds"): {"data": {"USER": b64("admin"), "PASS": b64("s3cret")}},
}


def lookup(kind: str, name: str) -> Obj | None:
    return OBJECTS.get((kind, name))


def run_env(container: Obj, services: dict[str, str] | None = None) -> dict[str, str]:
    return container_env(POD, {"name": "main", **container}, lookup, services or {}, FACTS).env


def test_container_env_golden() -> None:
    container = {
        "envFrom": [
            {"configMapRef": {"name": "base"}},
            {"configMapRef": {"name": "more"}},  # a later source overrides
            {"secretRef": {"name": "creds"}, "prefix": "DB_"},
        ],
        "env": [
            {"name": "MODE", "value": "override-$(MODE)"},  # env overrides envFrom
            {"name": "HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "URL", "valueFrom": {"configMapKeyRef": {"name": "single", "key": "url"}}},
            {"name": "LINK", "value": "$(HOST):$(WEB_SERVICE_PORT)/$(URL)/$(LATER)/$$(HOST)"},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "PASS"}}},
            {
                "name": "CPU",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}},
            },
            {"name": "TIER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['tier']"}}},
            {"name": "LATER", "value": "late"},
            {"name": "WEB_SERVICE_HOST", "value": "mine"},
            {"name": "EMPTY"},
        ],
    }
    services = {"WEB_SERVICE_HOST": "10.96.0.7", "WEB_SERVICE_PORT": "80"}
    result = container_env(POD, {"name": "main", **container}, lookup, services, FACTS)
    assert result.env == {
        "MODE": "override-base",
        "LEVEL": "2",
        "ok.key": "y",
        "DB_USER": "admin",
        "DB_PASS": "s3cret",
        "HOST": "10.244.1.5",
        "URL": "http://$(HOST)",  # a value from an object is not expanded
        "LINK": "10.244.1.5:80/http://$(HOST)/$(LATER)/$(HOST)",
        "PASSWORD": "s3cret",
        "CPU": "250",
        "TIER": "front",
        "LATER": "late",
        "WEB_SERVICE_HOST": "mine",  # the container's own wins over a Service variable
        "EMPTY": "",
        "WEB_SERVICE_PORT": "80",
    }
    assert result.warnings == [
        "Keys [1BAD] from the EnvFrom configMap app/base were skipped since they are "
        "considered invalid environment variable names."
    ]


@pytest.mark.parametrize(
    ("container", "message"),
    [
        ({"envFrom": [{"configMapRef": {"name": "nope"}}]}, 'configmap "nope" not found'),
        ({"envFrom": [{"secretRef": {"name": "nope"}}]}, 'secret "nope" not found'),
        (
            {
                "env": [
                    {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}
                ]
            },
            'configmap "nope" not found',
        ),
        (
            {
                "env": [
                    {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "base", "key": "k"}}}
                ]
            },
            "couldn't find key k in ConfigMap app/base",
        ),
        (
            {"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k"}}}]},
            "couldn't find key k in Secret app/creds",
        ),
    ],
)
def test_missing_sources_are_config_errors(container: Obj, message: str) -> None:
    with pytest.raises(RuntimeFailure) as failure:
        run_env(container)
    assert failure.value.reason == "CreateContainerConfigError"
    assert failure.value.message == message


def test_optional_missing_sources_are_skipped() -> None:
    container = {
        "envFrom": [{"configMapRef": {"name": "nope", "optional": True}}],
        "env": [
            {
                "name": "A",
                "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}},
            },
            {
                "name": "B",
                "valueFrom": {"configMapKeyRef": {"name": "base", "key": "k", "optional": True}},
            },
            {"name": "C", "value": "[$(A)$(B)]"},
        ],
    }
    assert run_env(container) == {"C": "[$(A)$(B)]"}


env_names = st.from_regex(re.compile(r"[A-Z][A-Z0-9_]{0,5}"), fullmatch=True)


@given(st.lists(st.tuples(env_names, st.text(alphabet="ab$()", max_size=8)), max_size=8))
def test_env_values_see_exactly_the_variables_defined_before_them(
    pairs: list[tuple[str, str]],
) -> None:
    env = run_env({"env": [{"name": n, "value": v} for n, v in pairs]})
    defined: dict[str, str] = {}
    for name, value in pairs:
        defined[name] = expand(value, defined) if value else ""
    assert env == defined
