"""Resource quantities: suffixes, exponents and kube's error for malformed ones."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minikube_py.api.quantity import QUANTITY_ERROR, parse_quantity


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100m", "0.1"),
        ("0.1", "0.1"),
        ("2", "2"),
        ("1.5Gi", str(int(1.5 * 2**30))),
        ("128Mi", str(128 * 2**20)),
        ("1Ki", "1024"),
        ("1k", "1000"),
        ("1M", "1000000"),
        ("250n", "0.00000025"),
        ("5u", "0.000005"),
        ("1e3", "1000"),
        ("12E-1", "1.2"),
        ("+3", "3"),
        ("-1", "-1"),
        (".5", "0.5"),
        ("1E", "1000000000000000000"),
    ],
)
def test_parses_kubernetes_quantities(text: str, expected: str) -> None:
    assert parse_quantity(text) == Decimal(expected)


@pytest.mark.parametrize("text", ["", "abc", "1Gb", "1.2.3", "1 Gi", "Mi", "1KiB", "1ki", "--1"])
def test_rejects_malformed_quantities_with_kubes_message(text: str) -> None:
    with pytest.raises(ValueError, match="quantities must match") as info:
        parse_quantity(text)
    assert str(info.value) == QUANTITY_ERROR


def test_json_numbers_are_quantities() -> None:
    assert parse_quantity(2) == 2
    assert parse_quantity(0.5) == Decimal("0.5")
    with pytest.raises(ValueError):
        parse_quantity(True)


@given(st.integers(min_value=0, max_value=10**6))
def test_milli_suffix_is_a_thousandth(n: int) -> None:
    assert parse_quantity(f"{n}m") * 1000 == parse_quantity(str(n))


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["Ki", "Mi", "Gi", "Ti"]))
def test_binary_suffixes_are_powers_of_1024(n: int, suffix: str) -> None:
    power = ["Ki", "Mi", "Gi", "Ti"].index(suffix) + 1
    assert parse_quantity(f"{n}{suffix}") == n * 1024**power
