"""Object storage: etcd for real clusters, an in-memory twin for unit tests.

Both implement one small interface built around a single primitive, `txn`: compare a few
keys' revisions, then put and delete atomically. Create, update, delete and the
allocators (a Service and its ClusterIP claim written in one transaction) are all
expressed with it, so the two stores share every semantic that matters:
`resourceVersion` is the etcd mod_revision of the object's key, a list reports the
revision it read at, and a watch replays every change after a revision or fails with
`Expired` once that revision is compacted away.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import aetcd
import aetcd.exceptions
import orjson

from minikube_py.api.types import Obj


class StoreError(Exception):
    pass


class Unavailable(StoreError):
    """The store cannot be reached: the apiserver answers 503 and retries later."""


class Expired(StoreError):
    """The requested revision has been compacted: 410 Gone."""


@dataclass(frozen=True)
class Absent:
    """Compare: the key does not exist."""

    key: str


@dataclass(frozen=True)
class AtRevision:
    """Compare: the key exists with exactly this mod_revision."""

    key: str
    revision: int


Compare = Absent | AtRevision


@dataclass
class Entry:
    key: str
    value: Obj
    revision: int  # mod_revision


class Stored(NamedTuple):
    """A value as the store holds it (the JSON `encode` made), at its mod_revision."""

    key: str
    raw: bytes
    revision: int


def decoded(stored: Sequence[Stored]) -> list[Entry]:
    return [Entry(s.key, decode(s.raw, s.revision), s.revision) for s in stored]


@dataclass
class WatchEvent:
    """One change, decoded only when read and then once: a shared watch hands the same
    event to every watcher, and most never look at `prev`."""

    type: str  # ADDED, MODIFIED, DELETED
    key: str
    raw: bytes  # the object as stored (for DELETED, as it was before)
    revision: int
    prev_raw: bytes | None = None  # before a MODIFIED

    @functools.cached_property
    def value(self) -> Obj:
        return decode(self.raw, self.revision)

    @functools.cached_property
    def prev(self) -> Obj | None:
        """The object before a MODIFIED, for selector transitions."""
        return orjson.loads(self.prev_raw) if self.prev_raw else None


@dataclass
class TxnResult:
    succeeded: bool
    revision: int  # the store revision after the transaction (or at the failed compare)


class Store(Protocol):
    async def get(self, key: str) -> Entry | None: ...

    async def list_raw(self, prefix: str) -> tuple[list[Stored], int]:
        """`list` without decoding: a list sent as it is stored decodes nothing."""

    async def list(self, prefix: str) -> tuple[list[Entry], int]: ...

    async def txn(
        self,
        compares: Sequence[Compare],
        puts: Sequence[tuple[str, Obj]] = (),
        deletes: Sequence[str] = (),
    ) -> TxnResult: ...

    def watch(self, prefix: str, after_revision: int) -> AsyncIterator[WatchEvent]: ...

    async def check_retained(self, revision: int) -> None:
        """Raise `Expired` when `revision` (at most the current one) is compacted: a
        watch starting there would fail."""

    async def compact(self, revision: int) -> None: ...

    async def close(self) -> None: ...


def with_revision(value: Obj, revision: int) -> Obj:
    """Stamp the object's resourceVersion (never stored, derived from the revision)."""
    value.setdefault("metadata", {})["resourceVersion"] = str(revision)
    return value


def encode(value: Obj) -> bytes:
    """The stored JSON: apiVersion, kind and metadata (without resourceVersion) lead, in
    that order, so that `stamped` can add the resourceVersion without decoding."""
    stored: Obj = {k: value[k] for k in ("apiVersion", "kind") if k in value}
    md = value.get("metadata")
    if md is not None:
        stored["metadata"] = (
            {k: v for k, v in md.items() if k != "resourceVersion"}
            if "resourceVersion" in md
            else md
        )
    stored.update((k, v) for k, v in value.items() if k not in stored)
    return orjson.dumps(stored)


def stored_head(api_version: str, kind: str) -> bytes:
    """How `encode` begins an object of this type, up to its metadata's first key."""
    return orjson.dumps({"apiVersion": api_version, "kind": kind})[:-1] + b',"metadata":{'


def stamped(raw: bytes, head: bytes, revision: int) -> bytes | None:
    """`raw` (stored by `encode`) with its resourceVersion, as JSON, without decoding it;
    None unless it begins with `head` (older data, or a value of another type)."""
    if not raw.startswith(head):
        return None
    rest = raw[len(head) :]
    version = b'"resourceVersion":"%d"' % revision
    return head + version + (rest if rest.startswith(b"}") else b"," + rest)


def decode(raw: bytes, revision: int) -> Obj:
    return with_revision(orjson.loads(raw), revision)


# --------------------------------------------------------------------------- memory


@dataclass
class _Versioned:
    raw: bytes
    revision: int


@dataclass
class MemoryStore:
    """Same contract as etcd, kept in a dict with a log of changes for watches."""

    history_limit: int = 100_000
    _data: dict[str, _Versioned] = field(default_factory=dict)
    _log: list[tuple[int, str, str, bytes, bytes | None]] = field(default_factory=list)
    _revision: int = 1
    _compacted: int = 0
    _changed: asyncio.Condition | None = None

    def _cond(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def get(self, key: str) -> Entry | None:
        v = self._data.get(key)
        return Entry(key, decode(v.raw, v.revision), v.revision) if v else None

    async def list_raw(self, prefix: str) -> tuple[list[Stored], int]:
        stored = [
            Stored(k, v.raw, v.revision)
            for k, v in sorted(self._data.items())
            if k.startswith(prefix)
        ]
        return stored, self._revision

    async def list(self, prefix: str) -> tuple[list[Entry], int]:
        stored, revision = await self.list_raw(prefix)
        return decoded(stored), revision

    async def txn(
        self,
        compares: Sequence[Compare],
        puts: Sequence[tuple[str, Obj]] = (),
        deletes: Sequence[str] = (),
    ) -> TxnResult:
        for c in compares:
            cur = self._data.get(c.key)
            ok = cur is None if isinstance(c, Absent) else (cur and cur.revision == c.revision)
            if not ok:
                return TxnResult(False, self._revision)
        if not puts and not any(k in self._data for k in deletes):
            return TxnResult(True, self._revision)  # etcd: a txn that changes nothing
        self._revision += 1
        rev = self._revision
        for key, value in puts:
            raw = encode(value)
            prev = self._data.get(key)
            kind = "MODIFIED" if prev else "ADDED"
            self._data[key] = _Versioned(raw, rev)
            self._log.append((rev, kind, key, raw, prev.raw if prev else None))
        for key in deletes:
            old = self._data.pop(key, None)
            if old is not None:
                self._log.append((rev, "DELETED", key, old.raw, None))
        if len(self._log) > self.history_limit:
            last_dropped = self._log[len(self._log) - self.history_limit - 1][0]
            self._compacted = max(self._compacted, last_dropped + 1)
            self._log = [e for e in self._log if e[0] >= self._compacted]
        cond = self._cond()
        async with cond:
            cond.notify_all()
        return TxnResult(True, rev)

    async def watch(self, prefix: str, after_revision: int) -> AsyncIterator[WatchEvent]:
        # like etcd, `_compacted` is the oldest revision still known: a watch may start
        # there, i.e. after the revision before it
        if after_revision < self._compacted - 1:
            raise Expired(f"revision {after_revision} compacted (at {self._compacted})")
        seen = after_revision
        cond = self._cond()
        while True:
            if seen < self._compacted - 1:
                raise Expired(f"revision {seen} compacted (at {self._compacted})")
            pending = [e for e in self._log if e[0] > seen]
            for rev, kind, key, raw, prev in pending:
                seen = rev
                if key.startswith(prefix):
                    yield WatchEvent(kind, key, raw, rev, prev)
            async with cond:
                if not any(e[0] > seen for e in self._log[-1:]):
                    await cond.wait()

    async def check_retained(self, revision: int) -> None:
        if revision < self._compacted:
            raise Expired(f"revision {revision} compacted (at {self._compacted})")

    async def compact(self, revision: int) -> None:
        self._compacted = max(self._compacted, revision)
        self._log = [e for e in self._log if e[0] >= revision]

    async def close(self) -> None:
        return None


# --------------------------------------------------------------------------- etcd

_UNAVAILABLE = (
    aetcd.exceptions.ConnectionFailedError,
    aetcd.exceptions.ConnectionTimeoutError,
    # aetcd pairs a watch's "created" answer with whichever create is pending: after a
    # timed-out create, the next watch could get the wrong stream. Failing over drops the
    # whole stream instead, and every watcher resumes from its last revision.
    aetcd.exceptions.WatchTimeoutError,
    aetcd.exceptions.InternalError,
    asyncio.TimeoutError,
    OSError,
)


def parse_endpoints(servers: str) -> list[tuple[str, int]]:
    """`http://127.0.0.1:2379,127.0.0.1:22379` -> [(host, port), ...]."""
    out = []
    for item in servers.split(","):
        item = item.strip().removeprefix("http://").removeprefix("https://").rstrip("/")
        if not item:
            continue
        host, _, port = item.rpartition(":")
        out.append((host or item, int(port) if host else 2379))
    if not out:
        raise ValueError(f"no etcd endpoint in {servers!r}")
    return out


# Group commit: requests that arrive while others are on their way to etcd wait, and go
# together as one etcd transaction, each its own operation in it (a write is a
# transaction nested in it, so each still compares and succeeds on its own). One gRPC
# call, and for writes one raft entry, then serve many requests: a gRPC call costs this
# process about 0.3 ms of CPU, about what the apiserver's own work on a create does.
# Writes and reads batch apart, so a read never waits for a write's fsync. One batch of
# each in flight batches best: with two, 50 clients' creates were no quicker. The limits
# keep a batch within etcd's --max-txn-ops (128) and --max-request-bytes (1.5 MiB)
# defaults.
MAX_BATCH = 64
MAX_BATCH_BYTES = 1 << 20


class _Waiting:
    """A request waiting for its batch."""

    def __init__(self, keys: list[bytes], size: int) -> None:
        self.keys = keys  # what it writes: etcd refuses a key written twice in one txn
        self.size = size  # its bytes in the request
        self.result: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def add_to(self, batch: Any) -> None:
        """Append its operation to `batch`, an etcd TxnRequest (built in place: protobuf
        would copy every message given to a constructor)."""
        raise NotImplementedError

    def answer(self, response: Any, revision: int) -> Any:
        """What its caller gets from its ResponseOp in the batch's response."""
        raise NotImplementedError


class _WaitingTxn(_Waiting):
    def __init__(
        self, compares: Sequence[Compare], puts: Sequence[tuple[str, Obj]], deletes: Sequence[str]
    ) -> None:
        self.compares = compares
        self.values = [(k.encode(), encode(v)) for k, v in puts]
        self.removed = [k.encode() for k in deletes]
        keys = [k for k, _ in self.values] + self.removed
        super().__init__(keys, sum(map(len, keys)) + sum(len(v) for _, v in self.values))

    def add_to(self, batch: Any) -> None:
        rpc = aetcd.rpc
        txn = batch.success.add().request_txn
        for c in self.compares:
            cmp = txn.compare.add()  # result: EQUAL, the default
            cmp.key = c.key.encode()
            if isinstance(c, Absent):
                cmp.target = rpc.Compare.CREATE
                cmp.create_revision = 0
            else:
                cmp.target = rpc.Compare.MOD
                cmp.mod_revision = c.revision
        for key, value in self.values:
            put = txn.success.add().request_put
            put.key = key
            put.value = value
        for key in self.removed:
            txn.success.add().request_delete_range.key = key

    def answer(self, response: Any, revision: int) -> TxnResult:
        return TxnResult(bool(response.response_txn.succeeded), revision)


class _WaitingGet(_Waiting):
    def __init__(self, key: str) -> None:
        super().__init__([], len(key))
        self.key = key

    def add_to(self, batch: Any) -> None:
        batch.success.add().request_range.key = self.key.encode()

    def answer(self, response: Any, revision: int) -> Entry | None:
        kvs = response.response_range.kvs
        if not kvs:
            return None
        return Entry(self.key, decode(kvs[0].value, kvs[0].mod_revision), kvs[0].mod_revision)


class _Batcher:
    """Requests sent as batches, one batch in flight at a time."""

    def __init__(self, send: Callable[[Any], Awaitable[Any]]) -> None:
        self._send = send  # an etcd TxnRequest -> its TxnResponse
        self._queue: collections.deque[_Waiting] = collections.deque()
        self._in_flight: asyncio.Task[None] | None = None

    async def submit(self, waiting: _Waiting) -> Any:
        self._queue.append(waiting)
        self._next()
        return await waiting.result

    def _next(self) -> None:
        if self._in_flight is not None or not self._queue:
            return
        batch = [self._queue.popleft()]
        written, size = set(batch[0].keys), batch[0].size
        while (
            self._queue
            and len(batch) < MAX_BATCH
            and size + self._queue[0].size <= MAX_BATCH_BYTES
            and written.isdisjoint(self._queue[0].keys)
        ):
            waiting = self._queue.popleft()
            batch.append(waiting)
            written.update(waiting.keys)
            size += waiting.size
        self._in_flight = asyncio.create_task(self._commit(batch))
        self._in_flight.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight = None
        self._next()

    async def _commit(self, batch: Sequence[_Waiting]) -> None:
        request = aetcd.rpc.TxnRequest()
        for waiting in batch:
            waiting.add_to(request)
        try:
            response = await self._send(request)
        except asyncio.CancelledError:
            for waiting in batch:
                waiting.result.cancel()
            raise
        except Exception as e:
            failed = list(batch)
            if isinstance(e, Unavailable):
                # no member answered: what waits fails now too, rather than one batch
                # per store timeout
                failed += self._queue
                self._queue.clear()
            for waiting in failed:
                if not waiting.result.done():
                    waiting.result.set_exception(e)
            return
        revision = int(response.header.revision)
        for waiting, op in zip(batch, response.responses, strict=True):
            if not waiting.result.done():  # its caller may have given up
                waiting.result.set_result(waiting.answer(op, revision))


class EtcdStore:
    """etcd through aetcd. With several endpoints (an etcd cluster) a failed call moves
    to the next member and retries there, so losing one member is invisible to
    clients; when every member fails the call raises `Unavailable`. Writes and single
    reads are batched (see `MAX_BATCH`)."""

    def __init__(self, endpoints: list[tuple[str, int]], timeout: float = 5.0) -> None:
        self._endpoints = endpoints
        self._current = 0
        self._timeout = timeout
        self._client: aetcd.Client | None = None
        self._writes = _Batcher(self._txn)
        self._reads = _Batcher(self._txn)

    def _connect(self) -> aetcd.Client:
        if self._client is None:
            host, port = self._endpoints[self._current]
            self._client = aetcd.Client(host=host, port=port, timeout=int(self._timeout))
        return self._client

    async def _failover(self, failed: aetcd.Client | None = None) -> None:
        """Drop the client and move to the next member. `failed`: the client a call
        failed on; when another call has already replaced it, nothing more happens
        (calls queued on the old client fail one by one and must not each move on)."""
        if failed is not None and failed is not self._client:
            return
        client, self._client = self._client, None
        self._current = (self._current + 1) % len(self._endpoints)
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), 1)

    async def _call(self, op: Any, bounded: bool = True) -> Any:
        """`op(client)`, on the next member when one fails. `bounded`: give up after the
        store's timeout; a watch creation is bounded by aetcd instead (see `watch`)."""
        last: BaseException | None = None
        for _ in range(len(self._endpoints)):
            client = self._connect()
            try:
                async with asyncio.timeout(self._timeout if bounded else None):
                    return await op(client)
            except _UNAVAILABLE as e:
                last = e
                await self._failover(client)
            except asyncio.CancelledError as e:
                # gRPC cancels the calls in flight on a channel that another call's
                # failover closed; only a cancellation of this task itself may end it
                task = asyncio.current_task()
                if client is self._client or task is None or task.cancelling():
                    raise
                last = e
        raise Unavailable(f"etcd unavailable: {last}")

    async def get(self, key: str) -> Entry | None:
        entry: Entry | None = await self._reads.submit(_WaitingGet(key))
        return entry

    async def list_raw(self, prefix: str) -> tuple[list[Stored], int]:
        rng = await self._call(lambda c: c.get_prefix(prefix.encode()))
        stored = [Stored(kv.key.decode(), kv.value, kv.mod_revision) for kv in rng.kvs]
        return stored, rng.header.revision

    async def list(self, prefix: str) -> tuple[list[Entry], int]:
        stored, revision = await self.list_raw(prefix)
        return decoded(stored), revision

    async def txn(
        self,
        compares: Sequence[Compare],
        puts: Sequence[tuple[str, Obj]] = (),
        deletes: Sequence[str] = (),
    ) -> TxnResult:
        result: TxnResult = await self._writes.submit(_WaitingTxn(compares, puts, deletes))
        return result

    async def _txn(self, request: Any) -> Any:
        """One etcd transaction, through `_call`: the raw call, since aetcd's own wrapper
        drops the response header, which carries the revision."""

        async def run(c: aetcd.Client) -> Any:
            await c.connect()
            try:
                return await c.kvstub.Txn(request, timeout=self._timeout, metadata=c.metadata)
            except aetcd.rpc.AioRpcError as e:
                raise aetcd.exceptions.ConnectionFailedError(str(e)) from e

        return await self._call(run)

    async def check_retained(self, revision: int) -> None:
        async def run(c: aetcd.Client) -> None:
            # a one-key count at that revision: etcd refuses it once compacted
            await c.connect()
            request = aetcd.rpc.RangeRequest(key=b"/", revision=revision, count_only=True)
            try:
                await c.kvstub.Range(request, timeout=self._timeout, metadata=c.metadata)
            except aetcd.rpc.AioRpcError as e:
                if "compacted" in (e.details() or ""):
                    raise Expired(e.details()) from e
                raise aetcd.exceptions.ConnectionFailedError(str(e)) from e

        await self._call(run)

    async def watch(self, prefix: str, after_revision: int) -> AsyncIterator[WatchEvent]:
        try:
            # aetcd creates one watch at a time and times out each creation itself; a
            # deadline of ours would also count the wait behind the other creations (50
            # watchers at once under load), and cancelling a creation crosses streams
            watch = await self._call(
                lambda c: c.watch_prefix(
                    prefix.encode(),
                    start_revision=after_revision + 1,
                    prev_kv=True,
                    progress_notify=True,
                ),
                bounded=False,
            )
        except aetcd.exceptions.RevisionCompactedError as e:
            raise Expired(str(e)) from e
        try:
            async for ev in watch:
                key = ev.kv.key.decode()
                if not key.startswith(prefix):  # a crossed stream: start every watch afresh
                    await self._failover()
                    raise Unavailable(f"etcd watch on {prefix} got an event for {key}")
                rev = ev.kv.mod_revision
                # aetcd gives an empty KeyValue, not None, when there is no previous one
                prev = ev.prev_kv.value if ev.prev_kv is not None and ev.prev_kv.key else None
                if ev.kind == "DELETE":
                    yield WatchEvent("DELETED", key, prev or b"{}", rev)
                else:
                    kind = "ADDED" if ev.kv.create_revision == rev else "MODIFIED"
                    yield WatchEvent(kind, key, ev.kv.value, rev, prev)
        except aetcd.exceptions.RevisionCompactedError as e:
            raise Expired(str(e)) from e
        except _UNAVAILABLE as e:
            raise Unavailable(f"etcd watch ended: {e}") from e
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(watch.cancel(), 1)

    async def compact(self, revision: int) -> None:
        await self._call(lambda c: c.compact(revision))

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
