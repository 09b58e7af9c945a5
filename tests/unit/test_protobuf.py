"""apiserver/protobuf.py: the wire format, the schema table, and the bodies real kubectl sends.

The kubectl tests run the installed kubectl against a throwaway loopback server that
serves discovery and records the protobuf bodies; each body must decode to exactly the
JSON object the same command prints with `--dry-run=client -o json`.
"""

import asyncio
import base64
import json
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from apiserver import discovery
from apiserver.protobuf import (
    MAGIC,
    SCHEMA,
    WELL_KNOWN,
    ProtobufError,
    decode_request,
    encode_response,
    iter_fields,
    read_varint,
    write_field,
    write_varint,
)
from minikube_py.api.resources import BY_GROUP_PLURAL, RESOURCES

# --- wire format -------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_varint_round_trip(value: int) -> None:
    encoded = write_varint(value)
    assert read_varint(encoded + b"\xff", 0) == (value, len(encoded))


def test_varint_golden() -> None:
    assert write_varint(0) == b"\x00"
    assert write_varint(300) == b"\xac\x02"
    assert write_varint(-1) == b"\xff" * 9 + b"\x01"  # int32/int64 negatives: 10 bytes


_field_values = st.one_of(st.integers(min_value=0, max_value=2**64 - 1), st.binary(max_size=40))


@given(st.lists(st.tuples(st.integers(min_value=1, max_value=2**29 - 1), _field_values)))
def test_fields_round_trip(fields: list[tuple[int, int | bytes]]) -> None:
    buf = b"".join(write_field(number, value) for number, value in fields)
    assert [(n, v) for n, _, v in iter_fields(buf)] == fields


@given(st.recursive(st.binary(max_size=10), lambda inner: st.lists(inner, max_size=4)))
def test_nested_messages_round_trip(tree: Any) -> None:
    """A tree of messages (lists) with byte leaves survives encoding as nested fields."""

    def encode(node: Any) -> bytes:
        if isinstance(node, bytes):
            return write_field(1, node)
        return b"".join(write_field(2, encode(child)) for child in node)

    def decode(buf: bytes) -> Any:
        fields = list(iter_fields(buf))
        if len(fields) == 1 and fields[0][0] == 1:
            return fields[0][2]
        return [decode(value) for _, _, value in fields]  # type: ignore[arg-type]

    assert decode(encode([tree])) == [tree]


@pytest.mark.parametrize(
    "buf", [b"\x80", b"\x0a\x05ab", b"\x0b", b"\x00\x01", b"\xff" * 11], ids=repr
)
def test_malformed_wire_is_rejected(buf: bytes) -> None:
    with pytest.raises(ProtobufError):
        list(iter_fields(buf))


@given(st.sampled_from(sorted({r.kind for r in RESOURCES})), st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_protobuf_error(kind: str, raw: bytes) -> None:
    api_version = next(r.api_version for r in RESOURCES if r.kind == kind)
    try:
        obj = decode_request(_envelope(api_version, kind, raw))
    except ProtobufError:
        return
    assert obj["kind"] == kind


def test_fixed_width_fields_are_skipped_when_unknown() -> None:
    unknown = b"\x71" + bytes(8) + b"\x7d" + bytes(4)  # fields 14 (64-bit), 15 (32-bit)
    raw = unknown + write_field(1, write_field(1, b"n")) + unknown
    assert decode_request(_envelope("v1", "ConfigMap", raw)) == {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": "n"},
    }


# --- schema and mapping ------------------------------------------------------------------


def test_every_referenced_type_is_defined() -> None:
    for message, fields in SCHEMA.items():
        for field in fields.values():
            assert (
                field.type in SCHEMA
                or field.type in WELL_KNOWN
                or field.type in {"s", "y", "i", "b"}
            ), (
                message,
                field,
            )
            assert field.json or field.type in SCHEMA, (message, field)


def test_every_served_kind_has_a_message() -> None:
    for r in RESOURCES:
        assert "metadata" in {f.json for f in SCHEMA[r.kind].values()}, r.kind


def _envelope(api_version: str, kind: str, raw: bytes, encoding: str = "") -> bytes:
    type_meta = write_field(1, api_version.encode()) + write_field(2, kind.encode())
    body = write_field(1, type_meta) + write_field(2, raw)
    return MAGIC + body + (write_field(3, encoding.encode()) if encoding else b"")


def test_well_known_types_golden() -> None:
    """Time drops nanos, MicroTime keeps micros, IntOrString picks its side, zeros drop."""
    meta = write_field(1, b"p") + write_field(7, 0) + write_field(5, b"")
    meta += write_field(8, b"")  # zero creationTimestamp: JSON null
    meta += write_field(9, write_field(1, 1_700_000_000) + write_field(2, 999))
    spec = write_field(4, write_field(1, 1_700_000_000) + write_field(2, 123_456_789))
    spec += write_field(2, 0)  # leaseDurationSeconds is a pointer: zero is kept
    assert decode_request(
        _envelope("coordination.k8s.io/v1", "Lease", write_field(1, meta) + write_field(2, spec))
    ) == {
        "kind": "Lease",
        "apiVersion": "coordination.k8s.io/v1",
        "metadata": {
            "name": "p",
            "creationTimestamp": None,
            "deletionTimestamp": "2023-11-14T22:13:20Z",
        },
        "spec": {"renewTime": "2023-11-14T22:13:20.123456Z", "leaseDurationSeconds": 0},
    }
    int_port = write_field(4, write_field(1, 0) + write_field(2, 8080) + write_field(3, b""))
    named_port = write_field(4, write_field(1, 1) + write_field(2, 0) + write_field(3, b"http"))
    spec = write_field(1, write_field(3, 80) + int_port) + write_field(1, named_port)
    assert decode_request(_envelope("v1", "Service", write_field(2, spec)))["spec"] == {
        "ports": [{"port": 80, "targetPort": 8080}, {"targetPort": "http"}]
    }


@pytest.mark.parametrize(
    ("seconds", "nanos", "time", "micro_time"),
    [
        (0, 0, "1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000000Z"),
        (-62135596800, 0, "0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000000Z"),
        (253402300799, 999_999_999, "9999-12-31T23:59:59Z", "9999-12-31T23:59:59.999999Z"),
    ],
)
def test_times_golden(seconds: int, nanos: int, time: str, micro_time: str) -> None:
    stamp = write_field(1, seconds) + write_field(2, nanos)
    raw = write_field(6, stamp) + write_field(10, stamp)  # firstTimestamp, eventTime
    event = decode_request(_envelope("v1", "Event", raw))
    assert (event["firstTimestamp"], event["eventTime"]) == (time, micro_time)


def test_inline_structs_merge_into_their_parent() -> None:
    source = write_field(2, b"")  # volumeSource.emptyDir
    volume = write_field(1, b"data") + write_field(2, source)
    spec = write_field(1, volume)
    pod = decode_request(_envelope("v1", "Pod", write_field(2, spec)))
    assert pod["spec"] == {"volumes": [{"name": "data", "emptyDir": {}}]}


def test_packed_and_unpacked_repeated_integers_both_decode() -> None:
    packed = write_field(4, write_varint(1) + write_varint(2))
    context = packed + write_field(4, 3)
    pod = decode_request(_envelope("v1", "Pod", write_field(2, write_field(14, context))))
    assert pod["spec"]["securityContext"]["supplementalGroups"] == [1, 2, 3]


def test_delete_options_decode_in_any_group_version() -> None:
    raw = write_field(1, 0) + write_field(4, b"Foreground") + write_field(5, b"All")
    assert decode_request(_envelope("apps/v1", "DeleteOptions", raw)) == {
        "kind": "DeleteOptions",
        "apiVersion": "apps/v1",
        "gracePeriodSeconds": 0,
        "propagationPolicy": "Foreground",
        "dryRun": ["All"],
    }


@pytest.mark.parametrize(
    "body",
    [
        b'{"kind": "Pod"}',
        _envelope("v1", "PodList", b""),
        _envelope("apps/v1", "Pod", b""),
        _envelope("v1", "Pod", b"", encoding="gzip"),
        _envelope("v1", "Pod", write_field(2, 5)),  # spec as a varint
        _envelope("v1", "Pod", write_field(1, write_field(1, b"\xff"))),  # name not UTF-8
    ],
    ids=["json", "list", "wrong-group", "gzip", "wire-type", "utf8"],
)
def test_bad_bodies_are_rejected(body: bytes) -> None:
    with pytest.raises(ProtobufError):
        decode_request(body)


# Objects in the normal form decode_request produces (no zero-valued omitempty scalars).
_names = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
_labels = st.dictionaries(_names, _names, min_size=1, max_size=3)
_ports = st.builds(
    lambda name, port, target: {"name": name, "port": port, "targetPort": target},
    _names,
    st.integers(1, 65535),
    st.one_of(st.integers(1, 65535), _names),
)
_services = st.builds(
    lambda name, labels, ports, selector: {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {"name": name, "labels": labels, "creationTimestamp": None},
        "spec": {"ports": ports, "selector": selector},
    },
    _names,
    _labels,
    st.lists(_ports, min_size=1, max_size=3),
    _labels,
)
_secrets = st.builds(
    lambda name, data, immutable: {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {"name": name, "generation": 3},
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        "immutable": immutable,
    },
    _names,
    st.dictionaries(_names, st.binary(max_size=20), min_size=1, max_size=3),
    st.booleans(),
)

_micro_times = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
).map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
_leases = st.builds(
    lambda name, holder, duration, renew: {
        "kind": "Lease",
        "apiVersion": "coordination.k8s.io/v1",
        "metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration, "renewTime": renew},
    },
    _names,
    st.one_of(st.just(""), _names),  # a pointer: "" is kept
    st.integers(-(2**31), 2**31 - 1),
    _micro_times,
)


@given(st.one_of(_services, _secrets, _leases))
def test_encode_decode_round_trip(obj: dict[str, Any]) -> None:
    assert decode_request(encode_response(obj)) == obj


@pytest.mark.parametrize(
    "obj",
    [
        {"kind": "Pod", "apiVersion": "v1", "metadata": {"labels": ["a"]}},
        {"kind": "Pod", "apiVersion": "v1", "metadata": {"finalizers": "a"}},
        {"kind": "Pod", "apiVersion": "v1", "metadata": {"generation": "1"}},
        {"kind": "Pod", "apiVersion": "v1", "spec": {"hostNetwork": 1}},
        {"kind": "Pod", "apiVersion": "v1", "spec": []},
        {"kind": "Secret", "apiVersion": "v1", "data": {"a": "not base64!"}},
        {"kind": "PodList", "apiVersion": "v1", "items": []},
    ],
    ids=["map", "list", "int", "bool", "message", "base64", "list-kind"],
)
def test_encode_rejects_what_it_cannot_represent(obj: dict[str, Any]) -> None:
    with pytest.raises(ProtobufError):
        encode_response(obj)


# --- real kubectl ------------------------------------------------------------------------

KUBECTL = shutil.which("kubectl")

_DEPLOYMENT_WEB = {
    "kind": "Deployment",
    "apiVersion": "apps/v1",
    "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {"name": "busybox", "image": "busybox", "ports": [{"containerPort": 80}]}
                ]
            },
        },
    },
}


async def _fake_apiserver(bodies: list[tuple[str, str, bytes]]) -> web.Application:
    """Discovery, one deployment, and POSTs recorded (path, content type, body)."""

    def reply(obj: Any, status: int = 200) -> web.Response:
        return web.json_response(obj, status=status)

    async def version(_: web.Request) -> web.Response:
        return reply({"major": "1", "minor": "32", "gitVersion": "v1.32.0"})

    async def legacy(request: web.Request) -> web.Response:
        return reply(discovery.api_versions(request.host))

    async def groups(_: web.Request) -> web.Response:
        return reply(discovery.api_group_list())

    async def resources(request: web.Request) -> web.Response:
        found = discovery.api_resource_list(
            request.match_info.get("group", ""), request.match_info["version"]
        )
        return reply(found) if found else reply({}, 404)

    async def deployment(_: web.Request) -> web.Response:
        return reply(_DEPLOYMENT_WEB)

    async def create(request: web.Request) -> web.Response:
        body = await request.read()
        bodies.append((request.path, request.content_type, body))
        res = BY_GROUP_PLURAL[(request.match_info.get("group", ""), request.match_info["plural"])]
        created = {"kind": res.kind, "apiVersion": res.api_version, "metadata": {"name": "x"}}
        return reply(created, 201)

    async def missing(_: web.Request) -> web.Response:
        return reply({"kind": "Status", "status": "Failure", "code": 404}, 404)

    app = web.Application()
    app.router.add_get("/version", version)
    app.router.add_get("/api", legacy)
    app.router.add_get("/apis", groups)
    app.router.add_get("/api/{version}", resources)
    app.router.add_get("/apis/{group}/{version}", resources)
    app.router.add_get("/apis/apps/v1/namespaces/default/deployments/web", deployment)
    app.router.add_post("/api/v1/{plural}", create)
    app.router.add_post("/api/v1/namespaces/{ns}/{plural}", create)
    app.router.add_post("/apis/{group}/v1/namespaces/{ns}/{plural}", create)
    app.router.add_route("*", "/{tail:.*}", missing)
    return app


@pytest.fixture
async def kubectl(tmp_path: Path) -> AsyncIterator[Any]:
    """Runs kubectl against the fake server; yields (run, recorded bodies)."""
    assert KUBECTL, "kubectl must be installed for these tests"
    bodies: list[tuple[str, str, bytes]] = []
    runner = web.AppRunner(await _fake_apiserver(bodies))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    config = tmp_path / "kubeconfig"
    config.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )

    async def run(*args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            KUBECTL,
            f"--kubeconfig={config}",
            f"--cache-dir={tmp_path / 'cache'}",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 0, err.decode()
        return out.decode()

    yield run, bodies
    await runner.cleanup()


PROTOBUF, JSON = "application/vnd.kubernetes.protobuf", "application/json"

# Each command and the body type kubectl 1.32 sends for it: typed generators send
# protobuf; `run` and `expose` build unstructured objects and send JSON (checked, so this
# list stays honest).
KUBECTL_COMMANDS = [
    (PROTOBUF, ["create", "namespace", "x"]),
    (PROTOBUF, ["create", "deployment", "web", "--image=busybox", "--replicas=2", "--port=80"]),
    (PROTOBUF, ["create", "service", "nodeport", "s", "--tcp=80:8080"]),
    (PROTOBUF, ["create", "service", "clusterip", "c", "--tcp=5678:http"]),
    (PROTOBUF, ["create", "service", "externalname", "e", "--external-name=example.com"]),
    (PROTOBUF, ["create", "service", "loadbalancer", "lb", "--tcp=443:8443", "--tcp=80"]),
    (PROTOBUF, ["create", "configmap", "c", "--from-literal=a=b", "--from-literal=empty="]),
    (PROTOBUF, ["create", "configmap", "bin", "--from-file={tmp}/blob", "--from-file={tmp}/text"]),
    (PROTOBUF, ["create", "deployment", "cmd", "--image=busybox", "--", "sleep", "3600"]),
    (PROTOBUF, ["create", "secret", "generic", "s", "--from-literal=a=b", "--type=Opaque"]),
    (
        PROTOBUF,
        ["create", "secret", "docker-registry", "d", "--docker-password=p", "--docker-username=u"],
    ),
    (PROTOBUF, ["create", "serviceaccount", "sa"]),
    (JSON, ["run", "p", "--image=busybox", "--labels=app=x", "--env=A=1", "--", "sleep", "10"]),
    (JSON, ["expose", "deployment", "web", "--port=80"]),
]


async def test_kubectl_bodies_decode_to_its_json(kubectl: Any, tmp_path: Path) -> None:
    run, bodies = kubectl
    (tmp_path / "blob").write_bytes(bytes(range(256)))  # not UTF-8: lands in binaryData
    (tmp_path / "text").write_text("key=value\n")
    for body_type, template in KUBECTL_COMMANDS:
        command = [arg.format(tmp=tmp_path) for arg in template]
        verb, *rest = command  # flags go before any `--` container arguments
        expected = json.loads(await run(verb, "--dry-run=client", "-o", "json", *rest))
        assert not bodies, "dry-run must not send anything"
        await run(*command)
        [(path, content_type, body)] = bodies
        bodies.clear()
        assert content_type == body_type, (command, content_type)
        sent = decode_request(body) if body_type == PROTOBUF else json.loads(body)
        assert sent == expected, (command, path)
        assert decode_request(encode_response(expected)) == expected, command
