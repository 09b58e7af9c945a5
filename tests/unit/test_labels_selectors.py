"""Label and field selectors: parsing, matching, and kube's error for unknown fields."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apiserver.errors import ApiError
from apiserver.selectors import parse_field_selector
from minikube_py.api import labels

KEYS = st.sampled_from(["app", "tier", "env", "example.com/team"])
VALUES = st.sampled_from(["web", "db", "a", "b", ""])


def test_parse_every_operator() -> None:
    sel = labels.parse("app=web,tier!=db,env in (a, b),!legacy,team,x==y,z notin (q)")
    assert sel == [
        labels.Requirement("app", "In", ("web",)),
        labels.Requirement("tier", "NotIn", ("db",)),
        labels.Requirement("env", "In", ("a", "b")),
        labels.Requirement("legacy", "DoesNotExist"),
        labels.Requirement("team", "Exists"),
        labels.Requirement("x", "In", ("y",)),
        labels.Requirement("z", "NotIn", ("q",)),
    ]


@pytest.mark.parametrize(
    ("selector", "matching", "other"),
    [
        ("app=web", {"app": "web"}, {"app": "db"}),
        ("tier!=db", {}, {"tier": "db"}),
        ("env in (a,b)", {"env": "b"}, {"env": "c"}),
        ("env notin (a)", {"env": "b"}, {"env": "a"}),
        ("!legacy", {"app": "x"}, {"legacy": ""}),
        ("team", {"team": ""}, {}),
    ],
)
def test_matches(selector: str, matching: dict[str, str], other: dict[str, str]) -> None:
    sel = labels.parse(selector)
    assert labels.matches(sel, matching)
    assert not labels.matches(sel, other)


@pytest.mark.parametrize("bad", ["env in a", "app=web x", "env in (a"])
def test_malformed_selectors_raise(bad: str) -> None:
    with pytest.raises(labels.SelectorError):
        labels.parse(bad)


def test_label_selector_object_none_selects_nothing_empty_everything() -> None:
    assert not labels.matches(labels.from_label_selector(None), {"a": "b"})
    assert labels.matches(labels.from_label_selector({}), {"a": "b"})
    sel = labels.from_label_selector(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["a"]}],
        }
    )
    assert labels.matches(sel, {"app": "web", "env": "a"})
    assert not labels.matches(sel, {"app": "web", "env": "b"})


@given(st.dictionaries(KEYS, VALUES, max_size=4), st.dictionaries(KEYS, VALUES, max_size=4))
def test_equality_string_and_map_forms_agree(sel: dict[str, str], obj: dict[str, str]) -> None:
    text = ",".join(f"{k}={v}" for k, v in sel.items())
    assert labels.matches(labels.parse(text), obj) == labels.matches(labels.from_map(sel), obj)


def test_field_selector_matches_nested_paths() -> None:
    pod = {"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}
    reqs = parse_field_selector("Pod", "spec.nodeName=n1,status.phase!=Failed")
    assert all(r.matches(pod) for r in reqs)
    assert not parse_field_selector("Pod", "spec.nodeName==n2")[0].matches(pod)


def test_field_selector_rejects_unknown_fields_like_kube() -> None:
    with pytest.raises(ApiError) as e:
        parse_field_selector("Service", "spec.type=NodePort")
    assert e.value.code == 400
    assert '"spec.type" is not a known field selector' in e.value.message
