"""The cheapest create this stack can serve: the apiserver's HTTP and store layers with
nothing between them. A peer for `bench/api.py`.

It serves as the apiserver does (aiohttp on uvloop, the same TLS certificate, bearer
tokens checked against the same file) one route: a POST of an object to a namespaced
collection is read as JSON and written with the apiserver's own `EtcdStore` (group
commit, a compare that the key is absent), then answered with the object and its
resourceVersion, 201. Nothing else happens: no defaults, validation, managedFields, uid,
timestamps, namespace check, allocation or metrics. So its creates per second, as a
ratio of raw etcd puts, are the most the apiserver's creates could reach on the same
machine; the apiserver's own CPU per create above this server's is what those steps
cost.

    python bench/floor_server.py --etcd-servers URL --secure-port N \\
        --tls-cert-file F --tls-private-key-file F --token-file F
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import ssl
from pathlib import Path

import orjson
import uvloop
from aiohttp import web

from apiserver.storage import Absent, EtcdStore, parse_endpoints


def app(store: EtcdStore, tokens: set[str]) -> web.Application:
    async def create(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if not any(hmac.compare_digest(auth, f"Bearer {t}") for t in tokens):
            return web.json_response({"kind": "Status", "code": 401}, status=401)
        body = orjson.loads(await request.read())
        info = request.match_info
        key = f"/floor/{info['plural']}/{info['namespace']}/{body['metadata']['name']}"
        result = await store.txn([Absent(key)], [(key, body)])
        if not result.succeeded:
            return web.json_response({"kind": "Status", "code": 409}, status=409)
        body["metadata"]["resourceVersion"] = str(result.revision)
        return web.Response(body=orjson.dumps(body), status=201, content_type="application/json")

    async def version(request: web.Request) -> web.Response:
        return web.json_response({"major": "1", "minor": "32"})

    application = web.Application()
    application.router.add_get("/version", version)  # the bench opens connections with it
    application.router.add_post("/api/v1/namespaces/{namespace}/{plural}", create)
    return application


async def serve(args: argparse.Namespace) -> None:
    store = EtcdStore(parse_endpoints(args.etcd_servers))
    tokens = set(Path(args.token_file).read_text().split())
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.tls_cert_file, args.tls_private_key_file)
    runner = web.AppRunner(app(store, tokens), access_log=None, keepalive_timeout=3600)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.secure_port, ssl_context=ctx).start()
    await asyncio.Event().wait()  # until the bench terminates this process


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--etcd-servers", required=True)
    p.add_argument("--secure-port", type=int, required=True)
    p.add_argument("--tls-cert-file", required=True)
    p.add_argument("--tls-private-key-file", required=True)
    p.add_argument("--token-file", required=True)
    uvloop.run(serve(p.parse_args()))


if __name__ == "__main__":
    main()
