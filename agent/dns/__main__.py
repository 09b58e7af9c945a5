"""Run the DNS server alone over a fixed set of objects: for benchmarks and debugging.

    python -m agent.dns --listen 127.0.0.53:5353 --objects cluster.json \\
        --upstream 127.0.0.54:53 --reverse-cidr 10.96.0.0/16

`cluster.json` holds {"services": [...], "endpointslices": [...], "pods": [...]}.
The agent itself builds the table from its informers instead.
"""

import argparse
import asyncio
import json
import signal

from agent.dns.records import build_dns_table
from agent.dns.server import DnsConfig, DnsServer, parse_address


async def serve(args: argparse.Namespace) -> None:
    with open(args.objects) as f:
        objects = json.load(f)
    table = build_dns_table(
        objects.get("services", []),
        objects.get("endpointslices", []),
        objects.get("pods", []),
        zone=args.zone,
        ttl=args.ttl,
    )
    config = DnsConfig(
        listen=args.listen,
        upstreams=tuple(args.upstream),
        reverse_cidrs=tuple(args.reverse_cidr),
    )
    server = DnsServer(config, table)
    host, port = await server.start()
    print(f"serving {host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m agent.dns")
    parser.add_argument("--listen", required=True, type=parse_address, help="IP:PORT")
    parser.add_argument("--objects", required=True, help="JSON file of Kubernetes objects")
    parser.add_argument(
        "--upstream", action="append", default=[], type=parse_address, help="IP[:PORT]"
    )
    parser.add_argument("--reverse-cidr", action="append", default=[])
    parser.add_argument("--zone", default="cluster.local")
    parser.add_argument("--ttl", type=int, default=5)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
