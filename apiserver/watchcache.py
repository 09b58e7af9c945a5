"""A mirror of one key prefix of the store, kept current by list + watch.

The registry reads namespaces from it on every create instead of asking etcd, as
kube-apiserver's NamespaceLifecycle admission reads its informer cache. A mirror is
always a little behind the store, so a caller trusts an entry only together with a
compare on the entry's revision in its own transaction: a stale entry makes that
transaction fail, and the caller falls back to a live read. A miss proves nothing
either (the watch may not have delivered a new key yet) and means a live read too.
"""

from __future__ import annotations

import asyncio
import logging

from apiserver.storage import Entry, Expired, Store, Unavailable

log = logging.getLogger("apiserver")


class WatchCache:
    def __init__(self, store: Store, prefix: str, retry_seconds: float = 1.0) -> None:
        self._store = store
        self._prefix = prefix
        self._retry_seconds = retry_seconds
        self._entries: dict[str, Entry] = {}
        self.revision = 0  # the store revision the mirror has caught up with

    def get(self, key: str) -> Entry | None:
        return self._entries.get(key)

    async def run(self) -> None:
        """Follow the store until cancelled: list, then watch from the list's revision;
        after the watch fails (store unreachable, revision compacted), list again."""
        while True:
            try:
                entries, revision = await self._store.list(self._prefix)
                self._entries = {e.key: e for e in entries}
                self.revision = revision
                async for ev in self._store.watch(self._prefix, revision):
                    if ev.type == "DELETED":
                        self._entries.pop(ev.key, None)
                    else:
                        self._entries[ev.key] = Entry(ev.key, ev.value, ev.revision)
                    self.revision = ev.revision
            except (Unavailable, Expired) as e:
                log.info("watch cache of %s restarts: %s", self._prefix, e)
            await asyncio.sleep(self._retry_seconds)
