import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.ipam import (
    IPAMError,
    IPAMExhausted,
    IPAMStore,
    gateway_of,
    pick_free,
    usable_addresses,
)


def test_usable_addresses_skip_network_gateway_and_broadcast() -> None:
    assert [str(ip) for ip in usable_addresses("10.244.3.0/29")] == [
        "10.244.3.2",
        "10.244.3.3",
        "10.244.3.4",
        "10.244.3.5",
        "10.244.3.6",
    ]
    assert gateway_of("10.244.3.0/24") == "10.244.3.1"
    assert len(list(usable_addresses("10.244.3.0/24"))) == 253


def test_cidr_must_be_a_network_with_room() -> None:
    with pytest.raises(ValueError):
        pick_free("10.244.3.1/24", [])
    with pytest.raises(IPAMError):
        pick_free("10.244.3.0/31", [])


def test_pick_free_goes_round_robin_after_the_last() -> None:
    assert pick_free("10.0.0.0/29", []) == "10.0.0.2"
    assert pick_free("10.0.0.0/29", [], last="10.0.0.4") == "10.0.0.5"
    assert pick_free("10.0.0.0/29", ["10.0.0.2"], last="10.0.0.6") == "10.0.0.3"
    with pytest.raises(IPAMExhausted):
        pick_free("10.0.0.0/30", ["10.0.0.2"])


def test_allocate_is_idempotent_and_release_frees(tmp_path: Path) -> None:
    store = IPAMStore(tmp_path / "ipam.json", "10.244.1.0/24")
    a = store.allocate("pod-a")
    assert a == "10.244.1.2"
    assert store.allocate("pod-a") == a
    b = store.allocate("pod-b")
    assert b == "10.244.1.3"
    assert store.release("pod-a") == a
    assert store.release("pod-a") is None
    # A freed address is not handed out again at once.
    assert store.allocate("pod-c") == "10.244.1.4"
    assert store.allocations() == {"pod-b": b, "pod-c": "10.244.1.4"}


def test_allocations_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state" / "ipam.json"
    first = IPAMStore(path, "10.244.1.0/24")
    ips = {uid: first.allocate(uid) for uid in ("a", "b", "c")}
    first.release("b")
    reopened = IPAMStore(path, "10.244.1.0/24")
    assert reopened.allocations() == {"a": ips["a"], "c": ips["c"]}
    assert reopened.allocate("a") == ips["a"]
    assert reopened.allocate("d") not in ips.values()
    assert [p.name for p in path.parent.iterdir()] == ["ipam.json"]  # no temp file left


def test_reconcile_frees_pods_that_are_gone(tmp_path: Path) -> None:
    store = IPAMStore(tmp_path / "ipam.json", "10.244.1.0/24")
    for uid in ("a", "b", "c"):
        store.allocate(uid)
    freed = store.reconcile(["b", "unknown"])
    assert sorted(freed) == ["a", "c"]
    assert list(IPAMStore(tmp_path / "ipam.json", "10.244.1.0/24").allocations()) == ["b"]


def test_exhaustion_and_cidr_change_are_errors(tmp_path: Path) -> None:
    store = IPAMStore(tmp_path / "ipam.json", "10.244.1.0/29")
    for i in range(5):
        store.allocate(f"pod-{i}")
    with pytest.raises(IPAMExhausted):
        store.allocate("one-too-many")
    with pytest.raises(IPAMError):
        IPAMStore(tmp_path / "ipam.json", "10.244.2.0/24")


def test_a_file_with_an_address_outside_the_cidr_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ipam.json"
    path.write_text(
        json.dumps({"cidr": "10.244.1.0/24", "last": None, "allocations": {"x": "10.9.9.9"}})
    )
    with pytest.raises(IPAMError):
        IPAMStore(path, "10.244.1.0/24")


operations = st.lists(
    st.tuples(st.sampled_from(["allocate", "release", "reconcile", "reopen"]), st.integers(0, 7)),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(operations)
def test_no_address_twice_none_leaked(tmp_path_factory: pytest.TempPathFactory, ops) -> None:
    path = tmp_path_factory.mktemp("ipam") / "ipam.json"
    cidr = "10.244.7.0/28"  # 13 usable addresses for up to 8 pods
    usable = {str(ip) for ip in usable_addresses(cidr)}
    store = IPAMStore(path, cidr)
    model: dict[str, str] = {}
    for op, n in ops:
        uid = f"pod-{n}"
        if op == "allocate":
            ip = store.allocate(uid)
            assert model.setdefault(uid, ip) == ip
        elif op == "release":
            assert store.release(uid) == model.pop(uid, None)
        elif op == "reconcile":
            live = {u for u in model if int(u.removeprefix("pod-")) % 2 == n % 2}
            store.reconcile(live)
            model = {u: ip for u, ip in model.items() if u in live}
        else:
            store = IPAMStore(path, cidr)
        allocations = store.allocations()
        assert allocations == model
        assert len(set(allocations.values())) == len(allocations)
        assert set(allocations.values()) <= usable
