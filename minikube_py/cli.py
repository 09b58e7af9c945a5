"""`minikube-py`: start, stop and inspect a lab; apply and list objects without kubectl.

Each subcommand is a small function over `Lab` (processes and state) or the REST
`Client` (objects). Failures print one line (`minikube-py: error: ...`) and exit 1;
progress goes to stderr through rich so that stdout stays parseable.
"""

from __future__ import annotations

# First: `start` runs on the agent's libraries; import them as lean (its CPU time).
import agent.lean_imports  # noqa: F401

# isort: split

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from minikube_py.api.resources import BY_KIND, RESOURCES, Resource
from minikube_py.api.types import Obj, clone
from minikube_py.client import ApiException, Client, Credentials, resource_path
from minikube_py.lab import Lab, LabConfig

err = Console(stderr=True, soft_wrap=True)
# wide enough that piped output never truncates a cell
out = Console(width=None if sys.stdout.isatty() else 400)


class CliError(Exception):
    pass


def _lab() -> Lab:
    return Lab()


def _step(message: str) -> None:
    err.print(f"[bold green]*[/] {message}")


# ---------------------------------------------------------------------- lifecycle


def _require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise CliError(f"{what} needs root (network namespaces, bridges, Docker)")


def host_upstreams(resolv_conf: Path = Path("/etc/resolv.conf")) -> list[str]:
    """The host's resolvers that a node namespace can reach (not loopback ones): where
    cluster DNS forwards other names unless `--dns-upstream` says otherwise."""
    import ipaddress

    from agent.dns.pod_config import parse_resolv_conf

    if not resolv_conf.exists():
        return []
    servers = parse_resolv_conf(resolv_conf.read_text()).nameservers
    return [s for s in servers if not ipaddress.ip_address(s).is_loopback]


def _dns_upstream(text: str) -> str:
    from agent.dns.server import parse_address

    try:
        parse_address(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e
    return text


def cmd_start(args: argparse.Namespace) -> None:
    lab = _lab()
    if not (lab.home / "config.json").exists():
        lab.config = LabConfig(
            nodes=args.nodes,
            proxy_mode=args.proxy_mode or "nftables",
            dns_upstreams=args.dns_upstream or host_upstreams(),
            etcd_servers=args.etcd_servers or "",
            apiserver_port=args.apiserver_port,
        )
    else:  # an existing lab keeps its settings, but flags given now win
        if args.proxy_mode:
            lab.config.proxy_mode = args.proxy_mode
        if args.dns_upstream:
            lab.config.dns_upstreams = args.dns_upstream
    if args.apiserver_workers:
        lab.config.apiserver_workers = args.apiserver_workers
    for address in args.apiserver_address or []:
        if address not in lab.config.bind_addresses:
            lab.config.bind_addresses.append(address)
    started = time.monotonic()
    with_nodes = args.nodes > 0 or bool(lab.config.node_indexes)
    if with_nodes:
        _require_root("a lab with nodes")
    # etcd first: it gets ready while the rest of the lab is imported and set up
    lab.start_etcd(wait=False)
    if with_nodes:
        from minikube_py.nodes import LabNodes

        LabNodes(lab).start(args.nodes, _step)
    else:
        lab.start_control_plane(_step)
    _step(
        f"ready in {time.monotonic() - started:.1f}s: kubectl get nodes, kubectl apply -f examples/"
    )


def cmd_stop(args: argparse.Namespace) -> None:
    lab = _lab()
    if not lab.components():
        _step("nothing is running")
        return
    lab.stop(_step)


def cmd_delete(args: argparse.Namespace) -> None:
    """With -f: delete the objects the files name; without: delete the whole lab."""
    if args.filename:
        asyncio.run(_delete(args.filename, args.namespace))
        return
    lab = _lab()
    if lab.config.node_indexes:
        _require_root("deleting a lab with nodes")
        from minikube_py.nodes import LabNodes

        LabNodes(lab).delete_all(_step)
    lab.delete(_step)


def cmd_node(args: argparse.Namespace) -> None:
    _require_root("node add/delete")
    from minikube_py.nodes import LabNodes

    lab = _lab()
    if not lab.pid("apiserver"):
        raise CliError("the lab is not running: run `minikube-py start` first")
    nodes = LabNodes(lab)
    if args.action == "add":
        nodes.add(progress=_step)
    else:
        if not args.name:
            raise CliError("node delete needs the node's NAME")
        try:
            nodes.index_of(args.name)
        except ValueError as e:
            raise CliError(str(e)) from e
        nodes.delete(args.name, _step)


def cmd_image_load(args: argparse.Namespace) -> None:
    """The lab's nodes share this machine's Docker engine, so an image in it is
    available to every node: check that it is there (pods use imagePullPolicy
    IfNotPresent or Never for it)."""
    import docker
    import docker.errors

    client = docker.from_env(timeout=30)
    try:
        image = client.images.get(args.image)
    except docker.errors.ImageNotFound as e:
        raise CliError(f"image {args.image} is not in the local Docker engine") from e
    finally:
        client.close()
    _step(f"image {args.image} ({image.short_id}) is available to every node")


def cmd_agent(args: argparse.Namespace) -> None:
    """A node agent on a real host: the same agent the lab runs in its namespaces."""
    from agent.main import main as agent_main

    agent_main(args.agent_args)


def cmd_status(args: argparse.Namespace) -> None:
    lab = _lab()
    status = lab.status()
    if not status:
        out.print(f"no lab in {lab.home}")
        sys.exit(1)
    table = Table("COMPONENT", "STATE", "PID")
    for component, pid in status.items():
        table.add_row(component, "Running" if pid else "Stopped", str(pid or "-"))
    out.print(table)
    if not all(status.values()):
        sys.exit(1)


def cmd_logs(args: argparse.Namespace) -> None:
    path = _lab().log_path(args.component)
    if not path.exists():
        raise CliError(f"no log for component {args.component!r} ({path})")
    with open(path, errors="replace") as f:
        sys.stdout.write(f.read())
        sys.stdout.flush()
        while args.follow:
            line = f.readline()
            if line:
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                time.sleep(0.2)


# ---------------------------------------------------------------------- objects


def _client() -> Client:
    lab = _lab()
    if not lab.admin_kubeconfig.exists():
        raise CliError("no lab is running: run `minikube-py start` first")
    return Client(
        Credentials.from_kubeconfig(lab.admin_kubeconfig),
        user_agent="minikube-py-cli",
        field_manager="minikube-py",
    )


def _documents(paths: list[str]) -> Iterator[tuple[str, Obj]]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml", ".json"))
        elif p.exists():
            files.append(p)
        else:
            raise CliError(f'the path "{p}" does not exist')
    for f in files:
        try:
            # as the JSON kubectl sends: YAML's timestamps and non-string keys as strings
            docs = [clone(doc) for doc in yaml.safe_load_all(f.read_text())]
        except yaml.YAMLError as e:
            raise CliError(f"{f}: invalid YAML: {e}") from e
        except TypeError as e:  # what JSON cannot hold, as an integer past 64 bits
            raise CliError(f"{f}: {e}") from e
        for doc in docs:
            if not doc:
                continue
            if not isinstance(doc, dict) or "kind" not in doc:
                raise CliError(f"{f}: every document needs apiVersion and kind")
            items = doc.get("items", []) if doc["kind"].endswith("List") else [doc]
            for item in items:
                yield str(f), item


def _resource_of(doc: Obj) -> Resource:
    res = BY_KIND.get(doc.get("kind", ""))
    if res is None or res.api_version != doc.get("apiVersion"):
        raise CliError(
            f'no matches for kind "{doc.get("kind")}" in version "{doc.get("apiVersion")}"'
        )
    return res


def _display(res: Resource) -> str:
    """`deployment.apps`, `service`: how kubectl names a kind in its messages."""
    return f"{res.singular}.{res.group}" if res.group else res.singular


def _find_resource(name: str) -> Resource:
    lowered = name.lower()
    for r in RESOURCES:
        if lowered in (r.plural, r.singular, r.kind.lower(), *r.short_names) or (
            r.group and lowered == f"{r.plural}.{r.group}"
        ):
            return r
    raise CliError(f'the server doesn\'t have a resource type "{name}"')


async def _apply(paths: list[str], namespace: str) -> None:
    async with _client() as client:
        for source, doc in _documents(paths):
            res = _resource_of(doc)
            md = doc.setdefault("metadata", {})
            ns = (md.get("namespace") or namespace) if res.namespaced else ""
            path = resource_path(res, ns, md.get("name", ""))
            try:
                await client.request(
                    "PATCH",
                    path,
                    doc,
                    content_type="application/apply-patch+yaml",
                    params={"fieldManager": "minikube-py", "force": "true"},
                )
            except ApiException as e:
                raise CliError(f"{source}: {e.status.get('message', e)}") from e
            out.print(f"{_display(res)}/{md.get('name')} serverside-applied")


async def _delete(paths: list[str], namespace: str) -> None:
    async with _client() as client:
        for source, doc in _documents(paths):
            res = _resource_of(doc)
            md = doc.get("metadata", {})
            ns = (md.get("namespace") or namespace) if res.namespaced else ""
            try:
                await client.delete(res.kind, md["name"], ns, {"propagationPolicy": "Background"})
                out.print(f'{_display(res)} "{md["name"]}" deleted')
            except ApiException as e:
                if e.code != 404:
                    raise CliError(f"{source}: {e.status.get('message', e)}") from e
                err.print(f"{source}: {e.status.get('message')}")


async def _get(kind: str, name: str, namespace: str, all_namespaces: bool, output: str) -> None:
    res = _find_resource(kind)
    ns = "" if all_namespaces or not res.namespaced else namespace
    async with _client() as client:
        if output in ("json", "yaml"):
            data: Any = (
                await client.get(res.kind, name, ns) if name else await client.list(res.kind, ns)
            )
            text = json.dumps(data, indent=2) if output == "json" else yaml.safe_dump(data)
            sys.stdout.write(text + ("\n" if output == "json" else ""))
            return
        async with client.session.get(
            resource_path(res, ns, name),
            headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        ) as resp:
            body = await resp.json()
            if resp.status >= 300:
                raise CliError(body.get("message", f"HTTP {resp.status}"))
    columns = [
        c for c in body["columnDefinitions"] if c.get("priority", 0) == 0 or output == "wide"
    ]
    keep = [i for i, c in enumerate(body["columnDefinitions"]) if c in columns]
    table = Table(box=None, pad_edge=False, header_style="bold")
    if all_namespaces:
        table.add_column("NAMESPACE")
    for c in columns:
        table.add_column(c["name"].upper())
    for row in body["rows"]:
        cells = [str(row["cells"][i]) for i in keep]
        if all_namespaces:
            cells.insert(0, row["object"]["metadata"].get("namespace", ""))
        table.add_row(*cells)
    if not body["rows"]:
        err.print(f"No resources found{' in ' + ns + ' namespace' if ns else ''}.")
        return
    out.print(table)


def cmd_service(args: argparse.Namespace) -> None:
    """The URLs a Service is reached by from this host."""
    from minikube_py.services import ServiceUrlError, service_url

    async def urls() -> list[str]:
        async with _client() as client:
            return await service_url(client, args.name, args.namespace)

    try:
        found = asyncio.run(urls())
    except ServiceUrlError as e:
        raise CliError(str(e)) from e
    if args.url:
        out.print("\n".join(found), highlight=False)
        return
    table = Table("NAMESPACE", "NAME", "URL", box=None)
    for url in found:
        table.add_row(args.namespace, args.name, url)
    out.print(table)


def cmd_tunnel(args: argparse.Namespace) -> None:
    """Route the service CIDR from this host through a Ready node until interrupted."""
    _require_root("tunnel")
    from minikube_py.services import tunnel

    tunnel(_lab(), progress=_step)


def cmd_apply(args: argparse.Namespace) -> None:
    asyncio.run(_apply(args.filename, args.namespace))


def cmd_get(args: argparse.Namespace) -> None:
    asyncio.run(_get(args.kind, args.name or "", args.namespace, args.all_namespaces, args.output))


# ---------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="minikube-py",
        description="A miniature Kubernetes lab on one Linux machine.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("start", help="start (or resume) the lab")
    s.add_argument("--nodes", type=int, default=2, help="number of nodes (default 2)")
    s.add_argument("--proxy-mode", choices=["nftables", "iptables"], help="default nftables")
    s.add_argument(
        "--apiserver-workers",
        type=int,
        metavar="N",
        help="apiserver processes sharing its port (default 1; more where cores are spare)",
    )
    s.add_argument(
        "--dns-upstream",
        action="append",
        type=_dns_upstream,
        metavar="IP[:PORT]",
        help="where cluster DNS forwards other names (repeatable; default: the host's "
        "non-loopback resolvers)",
    )
    s.add_argument("--etcd-servers", help="use these etcd endpoints instead of our own")
    s.add_argument("--apiserver-port", type=int, default=8443)
    s.add_argument(
        "--apiserver-address",
        action="append",
        metavar="IP",
        help="also listen on this address (repeatable), e.g. for agents on other hosts",
    )
    s.set_defaults(func=cmd_start)

    sub.add_parser("stop", help="stop every process, keeping state").set_defaults(func=cmd_stop)
    s = sub.add_parser(
        "delete", help="remove everything the lab made, or with -f the objects in files"
    )
    s.add_argument("-f", "--filename", action="append")
    s.add_argument("-n", "--namespace", default="default")
    s.set_defaults(func=cmd_delete)
    sub.add_parser("status", help="what runs").set_defaults(func=cmd_status)

    s = sub.add_parser("node", help="add or delete a lab node")
    s.add_argument("action", choices=["add", "delete"])
    s.add_argument("name", nargs="?")
    s.set_defaults(func=cmd_node)

    s = sub.add_parser("image", help="make a local Docker image available to pods")
    s.add_argument("action", choices=["load"])
    s.add_argument("image")
    s.set_defaults(func=cmd_image_load)

    s = sub.add_parser(
        "agent",
        help="run a node agent on this host (real hosts; see docs/real-hosts.md)",
        add_help=False,
    )
    s.add_argument("agent_args", nargs=argparse.REMAINDER)
    s.set_defaults(func=cmd_agent)

    s = sub.add_parser("service", help="the URL a Service is reached by from this host")
    s.add_argument("name")
    s.add_argument("-n", "--namespace", default="default")
    s.add_argument("--url", action="store_true", help="print only the URLs")
    s.set_defaults(func=cmd_service)

    s = sub.add_parser("tunnel", help="make ClusterIPs answer from this host (Ctrl-C ends)")
    s.set_defaults(func=cmd_tunnel)

    s = sub.add_parser("logs", help="a component's log")
    s.add_argument("component")
    s.add_argument("-f", "--follow", action="store_true")
    s.set_defaults(func=cmd_logs)

    s = sub.add_parser("apply", help="create or update objects from files (server-side)")
    s.add_argument("-f", "--filename", action="append", required=True)
    s.add_argument("-n", "--namespace", default="default")
    s.set_defaults(func=cmd_apply)

    s = sub.add_parser("get", help="list objects")
    s.add_argument("kind")
    s.add_argument("name", nargs="?")
    s.add_argument("-n", "--namespace", default="default")
    s.add_argument("-A", "--all-namespaces", action="store_true")
    s.add_argument("-o", "--output", choices=["table", "wide", "json", "yaml"], default="table")
    s.set_defaults(func=cmd_get)
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (CliError, ApiException, RuntimeError, TimeoutError, OSError) as e:
        err.print(f"minikube-py: error: {e}", highlight=False, markup=False)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
