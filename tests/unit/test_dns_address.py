"""`parse_address`: the IP[:PORT] flags of the agent (--dns-upstream) and of
`python -m agent.dns` (--listen, --upstream)."""

import argparse
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.dns.server import parse_address
from agent.main import parse_args


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.168.49.1", ("192.168.49.1", 53)),
        ("192.168.49.1:5353", ("192.168.49.1", 5353)),
        ("fd00::53", ("fd00::53", 53)),
        ("[fd00::53]", ("fd00::53", 53)),
        ("[fd00::53]:5353", ("fd00::53", 5353)),
        ("[FD00:0::53]:53", ("fd00::53", 53)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
    ],
)
def test_golden(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    "text",
    ["dns.example", "dns.example:53", "1.2.3.4:", "1.2.3.4:x", "1.2.3.4:65536",
     "1.2.3.4:-1", "[fd00::53", "[fd00::53]5353", "[1.2.3.4:53", "", ":53"],
)  # fmt: skip
def test_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"port|IP"):
        parse_address(text)


@given(st.ip_addresses(), st.integers(0, 65535))
def test_round_trip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> None:
    text = f"{ip}:{port}" if ip.version == 4 else f"[{ip}]:{port}"
    assert parse_address(text) == (str(ip), port)
    assert parse_address(str(ip), default_port=port) == (str(ip), port)


def test_the_agent_refuses_a_bad_upstream_before_starting() -> None:
    base = ["--kubeconfig", "k", "--node-name", "n", "--node-ip", "10.0.0.2", "--state-dir", "s"]
    args = parse_args([*base, "--dns-upstream", "192.168.49.1:5353", "--dns-upstream", "::1"])
    assert args.dns_upstream == [("192.168.49.1", 5353), ("::1", 53)]
    with pytest.raises(SystemExit):
        parse_args([*base, "--dns-upstream", "resolver.example"])
    assert isinstance(parse_args(base), argparse.Namespace)
    assert parse_args(base).dns_upstream == []
