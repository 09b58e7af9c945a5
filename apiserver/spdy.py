"""SPDY/3.1 framing, as far as Kubernetes streaming (port-forward) uses it.

`kubectl port-forward` multiplexes its connections as SPDY/3.1 streams, either over a
raw HTTP upgrade (`Upgrade: SPDY/3.1`) or tunnelled inside WebSocket binary messages
(subprotocol `SPDY/3.1+portforward.k8s.io`). Both carry the same byte stream, so this
module only turns bytes into frames and frames into bytes:

- `FrameReader.feed(data)` takes bytes in any chunking (a tunnelled peer may split a
  frame over several messages) and returns the complete frames; malformed input raises
  `SpdyError`, never anything else.
- `FrameWriter.encode(frame)` returns a frame's bytes.

Name/value header blocks are zlib-compressed with the SPDY/3 dictionary, one zlib
stream per direction for the whole connection: a reader or writer belongs to exactly
one connection direction, and frames must be encoded in the order they are sent.
Flow control (WINDOW_UPDATE, SETTINGS) is parsed but left to the caller, as the Go
implementation kubectl uses (moby/spdystream) neither sends nor honours windows.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS = 1, 2, 3, 4
PING, GOAWAY, HEADERS, WINDOW_UPDATE = 6, 7, 8, 9

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02  # SYN_STREAM only
FLAG_CLEAR_SETTINGS = 0x01  # SETTINGS only

# RST_STREAM status codes
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, UNSUPPORTED_VERSION = 1, 2, 3, 4
CANCEL, INTERNAL_ERROR, FLOW_CONTROL_ERROR, STREAM_IN_USE = 5, 6, 7, 8
STREAM_ALREADY_CLOSED, INVALID_CREDENTIALS, FRAME_TOO_LARGE = 9, 10, 11

MAX_STREAM_ID = 0x7FFFFFFF
MAX_FRAME_PAYLOAD = 0xFFFFFF  # the 24-bit length field
# A header block that inflates past this is refused rather than buffered (zip bombs).
MAX_HEADER_BLOCK = 256 * 1024

_HEADER = struct.Struct(">II")
_U32 = struct.Struct(">I")

# The SPDY/3 compression dictionary (draft 3, section 2.6.10.1): length-prefixed header
# names and common values, then a run of frequent response text. Its Adler-32 (the
# dictionary id in every zlib header) is 0xE3C6A7C2.
_DICTIONARY_WORDS = (
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
)
_DICTIONARY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417"
    "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
    "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
    "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct "
    "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
    "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8"
    "charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = (
    b"".join(_U32.pack(len(word)) + word.encode() for word in _DICTIONARY_WORDS)
    + _DICTIONARY_TAIL.encode()
)


class SpdyError(Exception):
    """The peer sent bytes that are not valid SPDY/3.1; the connection cannot go on."""


# Headers are a mapping of lowercase names to values; a value holding several values
# keeps SPDY's NUL separators.
Headers = dict[str, str]


@dataclass(frozen=True)
class Data:
    stream_id: int
    data: bytes = b""
    fin: bool = False


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    fin: bool = False
    unidirectional: bool = False
    associated_to: int = 0
    priority: int = 0
    slot: int = 0


@dataclass(frozen=True)
class SynReply:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    fin: bool = False


@dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True)
class Setting:
    id: int
    value: int
    flags: int = 0


@dataclass(frozen=True)
class Settings:
    entries: tuple[Setting, ...] = ()
    clear: bool = False


@dataclass(frozen=True)
class Ping:
    ping_id: int


@dataclass(frozen=True)
class GoAway:
    last_good_stream_id: int
    status: int = 0


@dataclass(frozen=True)
class HeadersFrame:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    fin: bool = False


@dataclass(frozen=True)
class WindowUpdate:
    stream_id: int
    delta: int


Frame = (
    Data | SynStream | SynReply | RstStream | Settings | Ping | GoAway | HeadersFrame | WindowUpdate
)


# ---------------------------------------------------------------------- writing


def _check_id(value: int, what: str, allow_zero: bool = False) -> int:
    if not (0 if allow_zero else 1) <= value <= MAX_STREAM_ID:
        raise ValueError(f"{what} {value} is outside 1..2^31-1")
    return value


def encode_header_block(headers: Headers) -> bytes:
    """The uncompressed name/value block: a count, then length-prefixed names and values."""
    parts = [_U32.pack(len(headers))]
    for name, value in headers.items():
        if not name or name != name.lower():
            raise ValueError(f"header name {name!r} must be non-empty and lowercase")
        for text in (name, value):
            raw = text.encode()
            parts += [_U32.pack(len(raw)), raw]
    return b"".join(parts)


class FrameWriter:
    """Encodes frames for one direction of one connection (it owns the header compressor)."""

    def __init__(self) -> None:
        self._compressor = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zdict=DICTIONARY)

    def _headers(self, headers: Headers) -> bytes:
        block = encode_header_block(headers)
        return self._compressor.compress(block) + self._compressor.flush(zlib.Z_SYNC_FLUSH)

    def encode(self, frame: Frame) -> bytes:
        if isinstance(frame, Data):
            _check_id(frame.stream_id, "stream id")
            if len(frame.data) > MAX_FRAME_PAYLOAD:
                raise ValueError(f"a data frame holds at most {MAX_FRAME_PAYLOAD} bytes")
            flags = FLAG_FIN if frame.fin else 0
            return _HEADER.pack(frame.stream_id, flags << 24 | len(frame.data)) + frame.data
        kind, flags, body = self._control(frame)
        if len(body) > MAX_FRAME_PAYLOAD:
            raise ValueError(f"a control frame holds at most {MAX_FRAME_PAYLOAD} bytes")
        return _HEADER.pack(0x80000000 | VERSION << 16 | kind, flags << 24 | len(body)) + body

    def _control(self, frame: Frame) -> tuple[int, int, bytes]:
        match frame:
            case SynStream():
                flags = (FLAG_FIN if frame.fin else 0) | (
                    FLAG_UNIDIRECTIONAL if frame.unidirectional else 0
                )
                if not 0 <= frame.priority <= 7 or not 0 <= frame.slot <= 255:
                    raise ValueError("priority is 0..7 and slot 0..255")
                head = struct.pack(
                    ">IIBB",
                    _check_id(frame.stream_id, "stream id"),
                    _check_id(frame.associated_to, "associated stream id", allow_zero=True),
                    frame.priority << 5,
                    frame.slot,
                )
                return SYN_STREAM, flags, head + self._headers(frame.headers)
            case SynReply():
                stream = _U32.pack(_check_id(frame.stream_id, "stream id"))
                return (
                    SYN_REPLY,
                    FLAG_FIN if frame.fin else 0,
                    stream + self._headers(frame.headers),
                )
            case HeadersFrame():
                stream = _U32.pack(_check_id(frame.stream_id, "stream id"))
                return HEADERS, FLAG_FIN if frame.fin else 0, stream + self._headers(frame.headers)
            case RstStream():
                return (
                    RST_STREAM,
                    0,
                    struct.pack(">II", _check_id(frame.stream_id, "stream id"), frame.status),
                )
            case Settings():
                body = _U32.pack(len(frame.entries)) + b"".join(
                    struct.pack(">II", e.flags << 24 | e.id, e.value) for e in frame.entries
                )
                return SETTINGS, FLAG_CLEAR_SETTINGS if frame.clear else 0, body
            case Ping():
                return PING, 0, _U32.pack(frame.ping_id)
            case GoAway():
                last = _check_id(frame.last_good_stream_id, "stream id", allow_zero=True)
                return GOAWAY, 0, struct.pack(">II", last, frame.status)
            case WindowUpdate():
                if not 1 <= frame.delta <= MAX_STREAM_ID:
                    raise ValueError(f"window delta {frame.delta} is outside 1..2^31-1")
                target = _check_id(frame.stream_id, "stream id", allow_zero=True)
                return WINDOW_UPDATE, 0, struct.pack(">II", target, frame.delta)
        raise TypeError(f"not a SPDY frame: {frame!r}")


# ---------------------------------------------------------------------- reading


def decode_header_block(block: bytes) -> Headers:
    """The inverse of `encode_header_block`; malformed blocks raise SpdyError."""
    view = memoryview(block)
    offset = 0

    def take(n: int) -> bytes:
        nonlocal offset
        if n > len(view) - offset:
            raise SpdyError("header block is truncated")
        chunk = bytes(view[offset : offset + n])
        offset += n
        return chunk

    def text() -> str:
        try:
            return take(_U32.unpack(take(4))[0]).decode()
        except UnicodeDecodeError as error:
            raise SpdyError("header block holds text that is not UTF-8") from error

    count = _U32.unpack(take(4))[0]
    headers: Headers = {}
    for _ in range(count):
        name = text()
        if not name or name != name.lower():
            raise SpdyError(f"header name {name!r} is empty or not lowercase")
        if name in headers:
            raise SpdyError(f"header {name!r} appears twice")
        headers[name] = text()
    if offset != len(view):
        raise SpdyError("header block has bytes after its last header")
    return headers


class FrameReader:
    """Decodes the frames of one direction of one connection, fed in any chunking."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._decompressor = zlib.decompressobj(zdict=DICTIONARY)

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= _HEADER.size:
            first, second = _HEADER.unpack_from(self._buffer)
            if first & 0x80000000 and (first >> 16) & 0x7FFF != VERSION:
                # refused from its header, before a bogus length is waited for
                raise SpdyError(f"unsupported SPDY version {(first >> 16) & 0x7FFF}")
            length = second & 0xFFFFFF
            if len(self._buffer) < _HEADER.size + length:
                break
            body = bytes(self._buffer[_HEADER.size : _HEADER.size + length])
            del self._buffer[: _HEADER.size + length]
            flags = second >> 24
            if first & 0x80000000:
                frame = self._control(first & 0xFFFF, flags, body)
                if frame is not None:
                    frames.append(frame)
            else:
                if first == 0:
                    raise SpdyError("data frame on stream 0")
                frames.append(Data(first, body, bool(flags & FLAG_FIN)))
        return frames

    def _headers(self, block: bytes) -> Headers:
        try:
            raw = self._decompressor.decompress(block, MAX_HEADER_BLOCK)
        except zlib.error as error:
            raise SpdyError(f"header block does not inflate: {error}") from error
        if self._decompressor.unconsumed_tail:
            raise SpdyError(f"header block inflates past {MAX_HEADER_BLOCK} bytes")
        return decode_header_block(raw)

    def _control(self, kind: int, flags: int, body: bytes) -> Frame | None:
        def need(size: int) -> None:
            if len(body) < size:
                raise SpdyError(f"control frame type {kind} is {len(body)} bytes, too short")

        def stream_id(offset: int = 0) -> int:
            value: int = _U32.unpack_from(body, offset)[0] & MAX_STREAM_ID
            if value == 0 and kind != WINDOW_UPDATE:
                raise SpdyError(f"control frame type {kind} names stream 0")
            return value

        fin = bool(flags & FLAG_FIN)
        if kind == SYN_STREAM:
            need(10)
            return SynStream(
                stream_id(),
                self._headers(body[10:]),
                fin=fin,
                unidirectional=bool(flags & FLAG_UNIDIRECTIONAL),
                associated_to=_U32.unpack_from(body, 4)[0] & MAX_STREAM_ID,
                priority=body[8] >> 5,
                slot=body[9],
            )
        if kind in (SYN_REPLY, HEADERS):
            need(4)
            cls = SynReply if kind == SYN_REPLY else HeadersFrame
            return cls(stream_id(), self._headers(body[4:]), fin=fin)
        if kind == RST_STREAM:
            need(8)
            return RstStream(stream_id(), _U32.unpack_from(body, 4)[0])
        if kind == SETTINGS:
            need(4)
            count = _U32.unpack_from(body, 0)[0]
            if len(body) != 4 + 8 * count:
                raise SpdyError(
                    f"SETTINGS frame of {len(body)} bytes does not hold {count} entries"
                )
            entries = []
            for offset in range(4, len(body), 8):
                head, value = struct.unpack_from(">II", body, offset)
                entries.append(Setting(head & 0xFFFFFF, value, head >> 24))
            return Settings(tuple(entries), clear=bool(flags & FLAG_CLEAR_SETTINGS))
        if kind == PING:
            if len(body) != 4:
                raise SpdyError(f"PING frame is {len(body)} bytes, not 4")
            return Ping(_U32.unpack(body)[0])
        if kind == GOAWAY:
            need(8)
            last, status = struct.unpack_from(">II", body)
            return GoAway(last & MAX_STREAM_ID, status)
        if kind == WINDOW_UPDATE:
            need(8)
            return WindowUpdate(stream_id(), _U32.unpack_from(body, 4)[0] & MAX_STREAM_ID)
        return None  # unknown control frames (CREDENTIAL among them) are ignored, per spec
