"""Kubernetes protobuf bodies (`application/vnd.kubernetes.protobuf`) to and from JSON dicts.

kubectl's typed generators (`create namespace|deployment|service|configmap|secret|
serviceaccount`) send their request bodies as protobuf and do not fall back to JSON
(`run`, `expose`, `apply` and `create -f` send JSON). On the wire such a body is the
magic `k8s\\x00` followed by a `runtime.Unknown` envelope: `typeMeta {apiVersion, kind}`,
`raw` (the object's own message, which carries no apiVersion/kind), `contentEncoding` and
`contentType`. The object is the proto2 encoding of the Go struct.

Three layers:

* a wire-format reader/writer (varints, 64-bit, length-delimited, 32-bit), schema-free;
* the field table of apiserver/protobuf_schema.py, parsed once into `Field`s;
* the JSON mapping, which reproduces what Go's JSON encoder writes for the decoded struct:
  Go's protobuf marshaller writes every non-pointer field, so a zero scalar on the wire
  is dropped (omitempty) unless the table marks its zero as meaningful; messages present
  on the wire are kept (Go never omits a struct), zero Times become null; bytes are
  base64; Time is RFC 3339 in seconds, MicroTime in microseconds; IntOrString is a number
  or a string; Quantity is its string. Fields absent on the wire stay absent; unknown
  field numbers are skipped, as proto2 readers do.

`encode_response` is the inverse for the same kinds, for clients that only accept
protobuf; it raises `ProtobufError` for anything it cannot encode (lists, Status), so a
caller can answer JSON instead.
"""

import base64
import binascii
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apiserver.protobuf_schema import MESSAGES
from minikube_py.api.resources import RESOURCES
from minikube_py.api.types import Obj

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
_SCALARS = frozenset("syib")
WELL_KNOWN = frozenset({"Time", "MicroTime", "IntOrString", "Quantity", "FieldsV1"})


class ProtobufError(ValueError):
    """The body is not a protobuf encoding of a kind this apiserver understands."""


# --- wire format -------------------------------------------------------------------------


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """The unsigned varint at `pos` and the position after it."""
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtobufError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise ProtobufError("varint longer than 10 bytes")


def iter_fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) for each field of a message, in wire order.

    Varints and fixed-width values are unsigned ints; length-delimited values are bytes.
    """
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtobufError("field number 0")
        value: int | bytes
        if wire == VARINT:
            value, pos = read_varint(buf, pos)
        elif wire in (FIXED64, FIXED32):
            end = pos + (8 if wire == FIXED64 else 4)
            value, pos = int.from_bytes(buf[pos:end], "little"), end
        elif wire == LENGTH:
            size, pos = read_varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        if pos > len(buf):
            raise ProtobufError("truncated field")
        yield number, wire, value


def write_varint(value: int) -> bytes:
    """The varint encoding of `value`; negative numbers as 64-bit two's complement."""
    value &= (1 << 64) - 1
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def write_field(number: int, value: int | bytes) -> bytes:
    """One field: an int as a varint, bytes as length-delimited."""
    if isinstance(value, int):
        return write_varint(number << 3 | VARINT) + write_varint(value)
    return write_varint(number << 3 | LENGTH) + write_varint(len(value)) + value


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


# --- the schema --------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    json: str  # "" for a Go struct embedded inline
    number: int
    type: str  # a scalar code, a well-known type or a message name
    repeated: bool = False
    map: bool = False
    keep_zero: bool = False


_FIELD = re.compile(r"(\w*)=(\d+):(\[\]|\{\})?([\w.]+)(!?)")


def _parse(spec: str) -> dict[int, Field]:
    fields = {}
    for token in spec.split():
        match = _FIELD.fullmatch(token)
        if match is None:
            raise ValueError(f"bad field spec {token!r}")
        name, number, container, type_, keep = match.groups()
        fields[int(number)] = Field(
            name, int(number), type_, container == "[]", container == "{}", keep == "!"
        )
    return fields


SCHEMA: dict[str, dict[int, Field]] = {name: _parse(spec) for name, spec in MESSAGES.items()}

# The message of each (apiVersion, kind) a body may carry. Served kinds share their Go
# names; DeleteOptions is encoded in whichever group version the client talks to.
_ROOTS: dict[tuple[str, str], str] = {(r.api_version, r.kind): r.kind for r in RESOURCES}
_ROOTS |= {
    ("v1", "Binding"): "Binding",
    ("autoscaling/v1", "Scale"): "Scale",
    ("authentication.k8s.io/v1", "TokenRequest"): "TokenRequest",
    ("policy/v1", "Eviction"): "Eviction",
}
_ANY_VERSION = frozenset({"DeleteOptions"})


def _message_for(api_version: str, kind: str) -> str:
    if kind in _ANY_VERSION:
        return kind
    message = _ROOTS.get((api_version, kind))
    if message is None:
        raise ProtobufError(f"no protobuf decoding for {api_version}/{kind}")
    return message


# --- decoding ----------------------------------------------------------------------------


def decode_request(body: bytes) -> Obj:
    """The object of a protobuf request body, as its Kubernetes JSON dict."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    type_meta, raw, encoding = b"", b"", ""
    for number, _, value in iter_fields(body[len(MAGIC) :]):
        if number == 1:
            type_meta = _bytes(value)
        elif number == 2:
            raw = _bytes(value)
        elif number == 3:
            encoding = _text(value)
    if encoding:
        raise ProtobufError(f"unsupported contentEncoding {encoding!r}")
    api_version = kind = ""
    for number, _, value in iter_fields(type_meta):
        if number == 1:
            api_version = _text(value)
        elif number == 2:
            kind = _text(value)
    obj: Obj = {"kind": kind, "apiVersion": api_version}
    return _decode_message(raw, _message_for(api_version, kind), obj)


def _decode_message(buf: bytes, message: str, out: Obj) -> Obj:
    """Decode `buf` as `message` into `out`; repeated occurrences merge, as in proto."""
    fields = SCHEMA[message]
    for number, wire, value in iter_fields(buf):
        field = fields.get(number)
        if field is None:
            continue
        if not field.json:
            _decode_message(_bytes(value), field.type, out)
        elif field.map:
            key, item = _decode_map_entry(_bytes(value), field.type)
            out.setdefault(field.json, {})[key] = item
        elif field.repeated:
            out.setdefault(field.json, []).extend(_decode_repeated(field.type, wire, value))
        elif field.type in SCHEMA:
            previous = out.get(field.json)
            into = previous if isinstance(previous, dict) else {}
            out[field.json] = _decode_message(_bytes(value), field.type, into)
        else:
            decoded = _decode_value(field.type, wire, value)
            if field.type in _SCALARS and not field.keep_zero and decoded in ("", 0):
                out.pop(field.json, None)  # an unset Go value, which JSON omits
            else:
                out[field.json] = decoded
    return out


def _decode_repeated(type_: str, wire: int, value: int | bytes) -> list[Any]:
    """The elements of one occurrence of a repeated field, packed or not."""
    if type_ in ("i", "b") and wire == LENGTH:
        packed, pos, items = _bytes(value), 0, []
        while pos < len(packed):
            item, pos = read_varint(packed, pos)
            items.append(_decode_value(type_, VARINT, item))
        return items
    return [_decode_value(type_, wire, value)]


def _decode_map_entry(buf: bytes, type_: str) -> tuple[str, Any]:
    key, value = "", _decode_value(type_, LENGTH, b"")
    for number, wire, item in iter_fields(buf):
        if number == 1:
            key = _text(item)
        elif number == 2:
            value = _decode_value(type_, wire, item)
    return key, value


def _decode_value(type_: str, wire: int, value: int | bytes) -> Any:
    """One value of a non-repeated type, in its JSON form."""
    if type_ == "i":
        return _signed(_int(value))
    if type_ == "b":
        return _int(value) != 0
    if type_ == "s":
        return _text(value)
    if type_ == "y":
        return base64.b64encode(_bytes(value)).decode()
    if type_ in SCHEMA:
        return _decode_message(_bytes(value), type_, {})
    buf = _bytes(value)
    fields = {number: item for number, _, item in iter_fields(buf)}
    if type_ == "Quantity":
        return _text(fields.get(1, b""))
    if type_ == "IntOrString":
        if _int(fields.get(1, 0)) == 1:
            return _text(fields.get(3, b""))
        return _signed(_int(fields.get(2, 0)))
    if type_ in ("Time", "MicroTime"):
        return _format_time(type_, buf, fields) if buf else None
    if type_ == "FieldsV1":
        try:
            return json.loads(_bytes(fields.get(1, b"")) or b"{}")
        except ValueError as e:
            raise ProtobufError(f"FieldsV1 is not JSON: {e}") from e
    raise ProtobufError(f"unknown type {type_}")


def _format_time(type_: str, buf: bytes, fields: dict[int, int | bytes]) -> str:
    try:
        moment = datetime.fromtimestamp(_signed(_int(fields.get(1, 0))), UTC)
    except (OverflowError, OSError, ValueError) as e:
        raise ProtobufError(f"time out of range: {buf!r}") from e
    if type_ == "Time":  # metav1.Time drops sub-second precision, like its JSON form
        return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
    micros = _signed(_int(fields.get(2, 0))) // 1000 % 1_000_000
    return moment.replace(microsecond=micros).isoformat(timespec="microseconds")[:-6] + "Z"


def _int(value: int | bytes) -> int:
    if not isinstance(value, int):
        raise ProtobufError("expected a number, found a length-delimited field")
    return value


def _bytes(value: int | bytes) -> bytes:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a length-delimited field, found a number")
    return value


def _text(value: int | bytes) -> str:
    try:
        return _bytes(value).decode()
    except UnicodeDecodeError as e:
        raise ProtobufError(f"string is not UTF-8: {e}") from e


# --- encoding ----------------------------------------------------------------------------


def encode_response(obj: Obj) -> bytes:
    """`obj` (apiVersion and kind set) as a protobuf body, the envelope included."""
    api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
    raw = _encode_message(obj, _message_for(api_version, kind))
    type_meta = write_field(1, api_version.encode()) + write_field(2, kind.encode())
    return MAGIC + write_field(1, type_meta) + write_field(2, raw)


def _encode_message(obj: Obj, message: str) -> bytes:
    if not isinstance(obj, dict):
        raise ProtobufError(f"{message} must be an object, not {type(obj).__name__}")
    out = bytearray()
    for field in sorted(SCHEMA[message].values(), key=lambda f: f.number):
        if not field.json:
            out += write_field(field.number, _encode_message(obj, field.type))
            continue
        if field.json not in obj:
            continue
        value = obj[field.json]
        if value is None and field.type not in ("Time", "MicroTime"):
            continue  # JSON null is Go's nil: nothing on the wire
        if field.map:
            if not isinstance(value, dict):
                raise ProtobufError(f"{message}.{field.json} must be an object")
            for key in sorted(value):
                entry = write_field(1, key.encode()) + _encode_value(2, field.type, value[key])
                out += write_field(field.number, entry)
        elif field.repeated:
            if not isinstance(value, list):
                raise ProtobufError(f"{message}.{field.json} must be a list")
            for item in value:
                out += _encode_value(field.number, field.type, item)
        else:
            out += _encode_value(field.number, field.type, value)
    return bytes(out)


def _encode_value(number: int, type_: str, value: Any) -> bytes:
    """One field holding `value` (its JSON form) as `type_`."""
    try:
        if type_ == "i" and isinstance(value, int) and not isinstance(value, bool):
            return write_field(number, value)
        if type_ == "b" and isinstance(value, bool):
            return write_field(number, int(value))
        if type_ == "s" and isinstance(value, str):
            return write_field(number, value.encode())
        if type_ == "y":
            return write_field(number, base64.b64decode(value, validate=True))
        if type_ in SCHEMA:
            return write_field(number, _encode_message(value, type_))
        if type_ == "Quantity":
            return write_field(number, write_field(1, str(value).encode()))
        if type_ == "IntOrString":
            if isinstance(value, str):
                body = write_field(1, 1) + write_field(2, 0) + write_field(3, value.encode())
            else:
                body = write_field(1, 0) + write_field(2, int(value)) + write_field(3, b"")
            return write_field(number, body)
        if type_ in ("Time", "MicroTime"):
            return write_field(number, _encode_time(value))
        if type_ == "FieldsV1":
            raw = json.dumps(value, separators=(",", ":")).encode()
            return write_field(number, write_field(1, raw))
    except (TypeError, ValueError, binascii.Error) as e:
        raise ProtobufError(f"cannot encode {value!r} as {type_}: {e}") from e
    raise ProtobufError(f"cannot encode {value!r} as {type_}")


def _encode_time(value: str | None) -> bytes:
    if value is None:
        return b""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = int(moment.timestamp())
    return write_field(1, seconds) + write_field(2, moment.microsecond * 1000)
