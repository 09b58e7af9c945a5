"""apiserver/spdy.py: SPDY/3.1 frames, golden bytes from kubectl 1.32, round trips, bad input.

The golden SYN_STREAM frames are what `kubectl port-forward -v=8` (1.32) logged writing
for its first connection: the error stream (1) and the data stream (3) of request 0 to
port 8080, the second header block compressed in the same zlib stream as the first.
"""

from __future__ import annotations

import contextlib
import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apiserver import spdy

KUBECTL_ERROR_STREAM = bytes.fromhex(
    "80 03 00 01 00 00 00 3e 00 00 00 01 00 00 00 00 00 00"
    " 78 f9 e3 c6 a7 c2 02 25 3a 70 3a 2b 29 4a 4d cc 85 16 25 ac a9 a0 80 86 14 cb"
    " 45 e0 1c 60 61 60 61 c0 c0 c0 c0 59 04 89 c6 4c 50 f2 66 34 00 00 00 00 ff ff"
)
KUBECTL_ERROR_FIN = bytes.fromhex("00 00 00 01 01 00 00 00")
KUBECTL_DATA_STREAM = bytes.fromhex(
    "80 03 00 01 00 00 00 18 00 00 00 03 00 00 00 00 00 00"
    " c2 aa 19 54 0e 25 12 d6 0b 00 00 00 ff ff"
)


def test_dictionary_is_the_spdy3_dictionary() -> None:
    # its Adler-32 is the dictionary id every SPDY/3 header block's zlib header carries
    assert len(spdy.DICTIONARY) == 1423
    assert zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")


def test_decodes_kubectl_stream_pair_at_once_and_byte_by_byte() -> None:
    wire = KUBECTL_ERROR_STREAM + KUBECTL_ERROR_FIN + KUBECTL_DATA_STREAM
    expected = [
        spdy.SynStream(1, {"port": "8080", "requestid": "0", "streamtype": "error"}),
        spdy.Data(1, b"", fin=True),
        spdy.SynStream(3, {"port": "8080", "requestid": "0", "streamtype": "data"}),
    ]
    assert spdy.FrameReader().feed(wire) == expected
    reader = spdy.FrameReader()
    assert [frame for i in range(len(wire)) for frame in reader.feed(wire[i : i + 1])] == expected


@pytest.mark.parametrize(
    ("frame", "wire"),
    [
        (spdy.Data(1, b"hi", fin=True), "00000001 01000002 6869"),
        (spdy.Data(3), "00000003 00000000"),
        (spdy.Ping(1), "80030006 00000004 00000001"),
        (spdy.RstStream(3, spdy.CANCEL), "80030003 00000008 00000003 00000005"),
        (spdy.GoAway(5, 2), "80030007 00000008 00000005 00000002"),
        (spdy.WindowUpdate(0, 65536), "80030009 00000008 00000000 00010000"),
        (
            spdy.Settings((spdy.Setting(7, 65536, flags=1),), clear=True),
            "80030004 0100000c 00000001 01000007 00010000",
        ),
    ],
)
def test_golden_frames(frame: spdy.Frame, wire: str) -> None:
    raw = bytes.fromhex(wire.replace(" ", ""))
    assert spdy.FrameWriter().encode(frame) == raw
    assert spdy.FrameReader().feed(raw) == [frame]


def test_header_blocks_are_zlib_with_the_dictionary_and_a_sync_flush() -> None:
    writer = spdy.FrameWriter()
    first = writer.encode(spdy.SynReply(1))
    second = writer.encode(spdy.SynReply(3, {"a": "b\x00c"}, fin=True))
    assert first[:8] == bytes.fromhex("80030002 00000014") and first[8:12] == b"\0\0\0\1"
    assert first[14:18] == struct.pack(">I", 0xE3C6A7C2)  # FDICT header names the dictionary
    assert first.endswith(b"\x00\x00\xff\xff") and second.endswith(b"\x00\x00\xff\xff")
    inflate = zlib.decompressobj(zdict=spdy.DICTIONARY)
    assert inflate.decompress(first[12:]) == b"\0\0\0\0"
    assert spdy.decode_header_block(inflate.decompress(second[12:])) == {"a": "b\x00c"}
    assert second[4] == spdy.FLAG_FIN


header_names = st.text("abcdefghijklmnopqrstuvwxyz-:0123456789", min_size=1, max_size=20)
header_blocks = st.dictionaries(header_names, st.text(max_size=40), max_size=6)
stream_ids = st.integers(1, spdy.MAX_STREAM_ID)
u32 = st.integers(0, 2**32 - 1)
frames = st.one_of(
    st.builds(spdy.Data, stream_ids, st.binary(max_size=300), st.booleans()),
    st.builds(
        spdy.SynStream,
        stream_ids,
        header_blocks,
        st.booleans(),
        st.booleans(),
        st.integers(0, spdy.MAX_STREAM_ID),
        st.integers(0, 7),
        st.integers(0, 255),
    ),
    st.builds(spdy.SynReply, stream_ids, header_blocks, st.booleans()),
    st.builds(spdy.HeadersFrame, stream_ids, header_blocks, st.booleans()),
    st.builds(spdy.RstStream, stream_ids, u32),
    st.builds(
        spdy.Settings,
        st.lists(
            st.builds(spdy.Setting, st.integers(0, 2**24 - 1), u32, st.integers(0, 255)),
            max_size=4,
        ).map(tuple),
        st.booleans(),
    ),
    st.builds(spdy.Ping, u32),
    st.builds(spdy.GoAway, st.integers(0, spdy.MAX_STREAM_ID), u32),
    st.builds(spdy.WindowUpdate, st.integers(0, spdy.MAX_STREAM_ID), stream_ids),
)


@given(st.lists(frames, max_size=12), st.lists(st.integers(1, 50), min_size=1))
def test_frames_round_trip_in_any_chunking(sent: list[spdy.Frame], cuts: list[int]) -> None:
    writer = spdy.FrameWriter()
    wire = b"".join(writer.encode(frame) for frame in sent)
    reader, received, offset = spdy.FrameReader(), [], 0
    for i in range(len(wire)):
        size = cuts[i % len(cuts)]
        received += reader.feed(wire[offset : offset + size])
        offset += size
        if offset >= len(wire):
            break
    assert received == sent


@given(st.integers(0, 12), st.integers(0, 255), st.binary(max_size=120), st.binary(max_size=60))
def test_garbage_raises_spdy_error_and_nothing_else(
    kind: int, flags: int, body: bytes, junk: bytes
) -> None:
    """Well-framed control frames of any type with random bodies, then raw junk."""
    reader = spdy.FrameReader()
    with contextlib.suppress(spdy.SpdyError):
        reader.feed(_control(kind, body, flags=flags) + junk)


@given(st.binary(min_size=1, max_size=200))
def test_garbage_header_block_raises_spdy_error(junk: bytes) -> None:
    frame = struct.pack(">IIII", 0x80030002, len(junk) + 4, 1, 0)[:12] + junk
    with pytest.raises(spdy.SpdyError):
        spdy.FrameReader().feed(frame)


def _control(kind: int, body: bytes, version: int = 3, flags: int = 0) -> bytes:
    return struct.pack(">II", 0x80000000 | version << 16 | kind, flags << 24 | len(body)) + body


def _block(raw: bytes) -> bytes:
    deflate = zlib.compressobj(zdict=spdy.DICTIONARY)
    return deflate.compress(raw) + deflate.flush(zlib.Z_SYNC_FLUSH)


def _pairs(*items: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(i)) + i for i in items)


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (_control(spdy.PING, b"\0\0\0\1", version=2), "unsupported SPDY version 2"),
        (_control(spdy.PING, b"\0\0\0\1\0"), "PING frame is 5 bytes"),
        (_control(spdy.RST_STREAM, b"\0\0\0\1"), "too short"),
        (_control(spdy.RST_STREAM, b"\0\0\0\0\0\0\0\1"), "names stream 0"),
        (_control(spdy.SETTINGS, b"\0\0\0\2" + b"\0" * 8), "does not hold 2 entries"),
        (b"\0\0\0\0\0\0\0\0", "data frame on stream 0"),
        (_control(spdy.SYN_REPLY, b"\0\0\0\1" + b"not zlib"), "does not inflate"),
        (
            _control(spdy.SYN_REPLY, b"\0\0\0\1" + _block(b"\0\0\0\1" + _pairs(b"Port", b"1"))),
            "not lowercase",
        ),
        (
            _control(
                spdy.SYN_REPLY,
                b"\0\0\0\1" + _block(b"\0\0\0\2" + _pairs(b"a", b"1", b"a", b"2")),
            ),
            "appears twice",
        ),
        (
            _control(spdy.SYN_REPLY, b"\0\0\0\1" + _block(b"\0\0\0\2" + _pairs(b"a", b"1"))),
            "truncated",
        ),
        (
            _control(spdy.SYN_REPLY, b"\0\0\0\1" + _block(b"\0\0\0\0extra")),
            "after its last header",
        ),
        (
            _control(spdy.SYN_REPLY, b"\0\0\0\1" + _block(b"\0" * (spdy.MAX_HEADER_BLOCK + 1))),
            "inflates past",
        ),
    ],
)
def test_malformed_frames_raise_a_clear_error(wire: bytes, message: str) -> None:
    with pytest.raises(spdy.SpdyError, match=message):
        spdy.FrameReader().feed(wire)


def test_unknown_control_frames_are_ignored() -> None:
    credential = _control(10, b"\0" * 12)
    assert spdy.FrameReader().feed(credential + _control(spdy.PING, b"\0\0\0\7")) == [spdy.Ping(7)]


@pytest.mark.parametrize(
    "frame",
    [
        spdy.Data(0),
        spdy.Data(2**31),
        spdy.SynStream(1, {"Port": "1"}),
        spdy.SynStream(1, priority=8),
        spdy.WindowUpdate(1, 0),
        spdy.Data(1, b"\0" * (spdy.MAX_FRAME_PAYLOAD + 1)),
    ],
)
def test_writer_refuses_frames_it_cannot_encode(frame: spdy.Frame) -> None:
    with pytest.raises(ValueError):
        spdy.FrameWriter().encode(frame)
