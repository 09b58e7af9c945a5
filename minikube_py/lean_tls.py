"""TLS costs our long-running processes do not need to pay, removed at import.

The apiserver, the controller manager and the agent import this module before anything
else (the agent through agent.lean_imports). Two costs go:

- aiohttp builds two default client contexts when `aiohttp.connector` is imported, and
  each parses the system CA store (about 140 certificates: 1 MB and 35 ms of CPU per
  context, in every process, three agents included, during the lab's start). Our
  processes talk TLS only to the cluster's own CA, with contexts of their own. Here
  that import runs with the verified context's CA store loaded at its first connection
  (`SystemCAsOnFirstUse`), and the unverified one (CERT_NONE, which verifies nothing)
  without a store. A process that does use aiohttp's defaults verifies exactly as
  before.
- asyncio's `SSLProtocol` allocates and zero-fills a 256 KiB read buffer for every TLS
  connection. HTTP/1.1 has no multiplexing, so every watch is a connection: each
  informer costs its process one buffer and the apiserver another (about forty in the
  apiserver of a three-node lab: 10 MB). A TLS record carries at most 16 KiB, so
  `TLS_READ_BUFFER_BYTES` still takes four records per read call: the same bytes, in
  smaller chunks. Connections made after the import get it. (The apiserver serves on
  uvloop, whose TLS reads into a buffer it does not zero-fill: only the pages a read
  touches become resident.)

In a process that imported aiohttp already, the first part changes nothing.
"""

from __future__ import annotations

import importlib
import os
import ssl
import sys
import threading
from asyncio import sslproto
from collections.abc import Callable
from typing import Any

TLS_READ_BUFFER_BYTES = 64 * 1024


class SystemCAsOnFirstUse(ssl.SSLContext):
    """A client context whose default CA store is loaded when it first wraps a
    connection, rather than when it is made."""

    _lock = threading.Lock()

    def load_default_certs(self, purpose: ssl.Purpose = ssl.Purpose.SERVER_AUTH) -> None:
        pending: list[Callable[[], None]] = self.__dict__.setdefault("_pending", [])
        pending.append(lambda: ssl.SSLContext.load_default_certs(self, purpose))

    def _load_pending(self) -> None:
        with self._lock:
            for load in self.__dict__.pop("_pending", []):
                load()

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        self._load_pending()
        return super().wrap_socket(*args, **kwargs)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        self._load_pending()
        return super().wrap_bio(*args, **kwargs)


def _client_context_with_cas_on_first_use(
    purpose: ssl.Purpose = ssl.Purpose.SERVER_AUTH,
    *,
    cafile: str | None = None,
    capath: str | None = None,
    cadata: str | bytes | None = None,
) -> ssl.SSLContext:
    """`ssl.create_default_context()` for a client, with the CA store deferred."""
    if purpose != ssl.Purpose.SERVER_AUTH or cafile or capath or cadata:
        return _create_default_context(purpose, cafile=cafile, capath=capath, cadata=cadata)
    context = SystemCAsOnFirstUse(ssl.PROTOCOL_TLS_CLIENT)
    context.load_default_certs(purpose)
    keylog = os.environ.get("SSLKEYLOGFILE")
    if keylog and not sys.flags.ignore_environment:
        context.keylog_filename = keylog
    return context


def _verify_paths_unless_verifying_nothing(context: ssl.SSLContext) -> None:
    if context.verify_mode != ssl.CERT_NONE:
        _set_default_verify_paths(context)


_create_default_context = ssl.create_default_context
_set_default_verify_paths = ssl.SSLContext.set_default_verify_paths


def _import_aiohttp_connector() -> None:
    if "aiohttp.connector" in sys.modules:
        return
    ssl.create_default_context = _client_context_with_cas_on_first_use  # type: ignore[assignment]
    ssl.SSLContext.set_default_verify_paths = _verify_paths_unless_verifying_nothing  # type: ignore[method-assign,assignment]
    try:
        importlib.import_module("aiohttp.connector")
    finally:
        ssl.create_default_context = _create_default_context
        ssl.SSLContext.set_default_verify_paths = _set_default_verify_paths  # type: ignore[method-assign]


def shrink_tls_read_buffers(size: int = TLS_READ_BUFFER_BYTES) -> None:
    """Give each TLS connection asyncio creates from now on a `size`-byte read buffer."""
    if size < 16 * 1024:
        raise ValueError("a TLS read buffer below one record (16 KiB) splits every record")
    sslproto.SSLProtocol.max_size = size


_import_aiohttp_connector()
shrink_tls_read_buffers()
