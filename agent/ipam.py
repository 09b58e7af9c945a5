"""Pod address management for one node's pod CIDR.

Two layers: `pick_free` is a pure choice of the next free address (round-robin after
the last one handed out, so a freed address is not reused at once while stale conntrack
entries or ARP caches may still point at it), and `IPAMStore` keeps the allocations
keyed by pod uid in a JSON file, rewritten atomically (write, fsync, rename) on every
change, so a restarted agent hands out no address twice and leaks none.

Usable addresses skip the network address, the gateway (first host, on the bridge
`cni0`) and the broadcast address.
"""

from __future__ import annotations

import ipaddress
import json
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path


class IPAMError(Exception):
    """The pod CIDR cannot serve the request."""


class IPAMExhausted(IPAMError):
    """Every usable address of the pod CIDR is allocated."""


def pod_network(cidr: str) -> ipaddress.IPv4Network:
    network = ipaddress.IPv4Network(cidr, strict=True)
    if network.prefixlen > 30:
        raise IPAMError(f"pod CIDR {cidr} is too small: it needs room for a gateway and pods")
    return network


def gateway_of(cidr: str) -> str:
    """The bridge's address: the first host address of the pod CIDR."""
    return str(pod_network(cidr).network_address + 1)


def usable_addresses(cidr: str) -> Iterator[ipaddress.IPv4Address]:
    network = pod_network(cidr)
    first = int(network.network_address) + 2
    last = int(network.broadcast_address) - 1
    for value in range(first, last + 1):
        yield ipaddress.IPv4Address(value)


def pick_free(cidr: str, in_use: Iterable[str], last: str | None = None) -> str:
    """The first usable address after `last` (wrapping around) that is not in use."""
    taken = {ipaddress.IPv4Address(ip) for ip in in_use}
    candidates = list(usable_addresses(cidr))
    start = 0
    if last is not None:
        last_ip = ipaddress.IPv4Address(last)
        start = next((i + 1 for i, ip in enumerate(candidates) if ip == last_ip), 0)
    for offset in range(len(candidates)):
        candidate = candidates[(start + offset) % len(candidates)]
        if candidate not in taken:
            return str(candidate)
    raise IPAMExhausted(f"no free address left in {cidr}")


class IPAMStore:
    """Allocations of one pod CIDR, persisted at `path`; safe to call from threads."""

    def __init__(self, path: Path, cidr: str) -> None:
        self._path = Path(path)
        self._cidr = str(pod_network(cidr))
        self._lock = threading.Lock()
        self._allocations: dict[str, str] = {}
        self._last: str | None = None
        self._load()

    @property
    def cidr(self) -> str:
        return self._cidr

    def allocations(self) -> dict[str, str]:
        """pod uid -> address, a copy."""
        with self._lock:
            return dict(self._allocations)

    def allocate(self, uid: str) -> str:
        """The pod's address; the same one on every call until it is released."""
        with self._lock:
            existing = self._allocations.get(uid)
            if existing is not None:
                return existing
            ip = pick_free(self._cidr, self._allocations.values(), self._last)
            self._allocations[uid] = ip
            self._last = ip
            self._save()
            return ip

    def release(self, uid: str) -> str | None:
        """Free the pod's address; returns it, or None when the pod had none."""
        with self._lock:
            ip = self._allocations.pop(uid, None)
            if ip is not None:
                self._save()
            return ip

    def reconcile(self, live_uids: Iterable[str]) -> dict[str, str]:
        """Free the addresses of pods not in `live_uids`; returns what was freed."""
        live = set(live_uids)
        with self._lock:
            freed = {uid: ip for uid, ip in self._allocations.items() if uid not in live}
            if freed:
                for uid in freed:
                    del self._allocations[uid]
                self._save()
            return freed

    def _load(self) -> None:
        try:
            data = json.loads(self._path.read_text())
        except FileNotFoundError:
            return
        if data.get("cidr") != self._cidr:
            raise IPAMError(
                f"{self._path} holds allocations of {data.get('cidr')}, not {self._cidr}"
            )
        network = ipaddress.IPv4Network(self._cidr)
        allocations = {str(uid): str(ip) for uid, ip in data.get("allocations", {}).items()}
        for uid, ip in allocations.items():
            if ipaddress.IPv4Address(ip) not in network:
                raise IPAMError(f"{self._path}: {ip} of pod {uid} is outside {self._cidr}")
        self._allocations = allocations
        self._last = data.get("last")

    def _save(self) -> None:
        data = {"cidr": self._cidr, "last": self._last, "allocations": self._allocations}
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_name(self._path.name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._path)
        dir_fd = os.open(self._path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
