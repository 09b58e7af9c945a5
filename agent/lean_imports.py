"""Importing this module keeps what the agent never uses out of its memory.

The agent's resident memory has a budget (an agent under 60 MB), and two of its
libraries import much more than it needs:

- pyroute2's package `__init__` imports every netlink family it supports (IPDB, NDB
  with SQLite, WireGuard, nl80211, IPVS, devlink, ...), about 5 MB, where the agent uses
  `IPRoute`, `netns` and the netlink exceptions. The package is registered without
  running its `__init__`: submodules import as usual, `IPRoute` comes from
  `pyroute2.iproute`, and any other top-level name still works (its first use runs the
  real `__init__`).
- requests (under the Docker client) imports a character-set detector, 2.6 MB, to guess
  the encoding of a text body that does not name one. The Docker Engine API speaks JSON
  in UTF-8, which is what requests assumes without a detector, so the detectors are
  marked absent (`sys.modules[name] = None`) and requests' warning about it is muted.
- aiohttp's default client contexts and asyncio's TLS read buffers: see
  minikube_py.lean_tls, shared with the control plane's processes.

The agent's `main` imports this module before anything else, and so does the CLI, whose
`start` uses the same libraries (its import time is part of the lab's start). In a
process that imported these libraries already it changes nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings
from typing import Any

import minikube_py.lean_tls  # noqa: F401

# top-level names of pyroute2 the agent and the lab use -> the submodule defining them
_PYROUTE2_NAMES = {"IPRoute": "pyroute2.iproute", "AsyncIPRoute": "pyroute2.iproute"}
_CHARSET_DETECTORS = ("charset_normalizer", "chardet")


def _register_pyroute2_lean() -> None:
    if "pyroute2" in sys.modules:
        return
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.loader is None:
        return  # not installed: the import that needs it will say so
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def attribute(name: str) -> Any:
        if name in _PYROUTE2_NAMES:
            return getattr(importlib.import_module(_PYROUTE2_NAMES[name]), name)
        if name.startswith("__") or importlib.util.find_spec(f"pyroute2.{name}") is not None:
            raise AttributeError(name)  # a submodule: the import system loads it
        del package.__getattr__
        loader.exec_module(package)  # anything else: the whole package, as usual
        return getattr(package, name)

    package.__getattr__ = attribute  # type: ignore[method-assign]
    sys.modules["pyroute2"] = package


def _drop_charset_detectors() -> None:
    if "requests" in sys.modules:
        return
    for name in _CHARSET_DETECTORS:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    warnings.filterwarnings("ignore", "Unable to find acceptable character detection")


_register_pyroute2_lean()
_drop_charset_detectors()
