"""minikube_py.lean_tls: aiohttp's default contexts without their CA stores until used,
and asyncio's TLS read buffer shrunk. The import acts on the process, so the aiohttp
checks run in fresh interpreters."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
import textwrap
from asyncio import sslproto
from collections.abc import Iterator
from pathlib import Path

import pytest

from minikube_py import certs
from minikube_py.lean_tls import TLS_READ_BUFFER_BYTES, shrink_tls_read_buffers

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB: many buffers' worth, through TLS

# the observable settings of a context, and of its CA store once it made a connection
DESCRIBE = """
def describe(ctx):
    settings = (ctx.protocol, ctx.options, ctx.verify_mode, ctx.check_hostname,
                ctx.minimum_version, ctx.verify_flags)
    return settings, ctx.cert_store_stats()

def connect(ctx):
    ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="example.org")
"""


def run(code: str, lean: bool) -> str:
    program = ("import minikube_py.lean_tls\n" if lean else "") + textwrap.dedent(code)
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", program], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_aiohttp_default_contexts_behave_as_without_it_once_used() -> None:
    code = (
        "import ssl\nfrom aiohttp import connector\n"
        + DESCRIBE
        + """
verified, unverified = connector._SSL_CONTEXT_VERIFIED, connector._SSL_CONTEXT_UNVERIFIED
print(describe(verified)[1]["x509_ca"] > 0)
connect(verified)
connect(unverified)
print(describe(verified))
print(describe(unverified)[0])
"""
    )
    lean, plain = run(code, lean=True).splitlines(), run(code, lean=False).splitlines()
    assert lean[0] == "False" and plain[0] == "True"  # the store waits for a connection
    assert lean[1:] == plain[1:]
    assert "'x509_ca': 0" not in lean[1]


def test_a_default_context_of_aiohttp_still_refuses_an_unknown_ca(tmp_path: Path) -> None:
    crt, key = certs.ensure_serving_cert(tmp_path, ["127.0.0.1"], ["localhost"])
    out = run(
        f"""
        import asyncio, ssl, aiohttp

        async def main():
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain({str(crt)!r}, {str(key)!r})
            server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=ctx)
            port = server.sockets[0].getsockname()[1]
            async with server, aiohttp.ClientSession() as session:
                try:
                    await session.get(f"https://127.0.0.1:{{port}}/")
                except aiohttp.ClientConnectorCertificateError as e:
                    print(e.certificate_error.verify_message)

        asyncio.run(main())
        """,
        lean=True,
    )
    assert "unable to get local issuer certificate" in out or "self-signed" in out, out


@pytest.fixture
def restored_buffer_size() -> Iterator[None]:
    saved = sslproto.SSLProtocol.max_size
    yield
    sslproto.SSLProtocol.max_size = saved


async def test_connections_get_the_smaller_buffer_and_carry_data_intact(
    tmp_path: Path, restored_buffer_size: None
) -> None:
    shrink_tls_read_buffers()
    crt, key = certs.ensure_serving_cert(tmp_path, ["127.0.0.1"], ["localhost"])
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(str(crt), str(key))
    client_ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    buffers: list[int] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffers.append(len(writer.transport._ssl_protocol._ssl_buffer))  # type: ignore[attr-defined]
        writer.write(await reader.readexactly(len(PAYLOAD)))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    async with server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)
        writer.write(PAYLOAD)
        assert await reader.readexactly(len(PAYLOAD)) == PAYLOAD
        assert len(writer.transport._ssl_protocol._ssl_buffer) == TLS_READ_BUFFER_BYTES  # type: ignore[attr-defined]
        writer.close()
    assert buffers == [TLS_READ_BUFFER_BYTES]
    assert TLS_READ_BUFFER_BYTES < 256 * 1024  # asyncio's own size


def test_a_buffer_below_one_record_is_refused(restored_buffer_size: None) -> None:
    with pytest.raises(ValueError):
        shrink_tls_read_buffers(4096)
