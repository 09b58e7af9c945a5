"""A pod's /etc/resolv.conf and /etc/hosts, as the kubelet writes them.

resolv.conf follows the pod's dnsPolicy: ClusterFirst (the default) points at the node's
cluster DNS with the namespace search path and `ndots:5`, except on the host network
where it behaves as Default; ClusterFirstWithHostNet uses cluster DNS even there;
Default copies the host's resolver; None starts empty. `spec.dnsConfig` is then merged
in (nameservers and searches appended without duplicates, options overriding by name)
and the result is cut to the kubelet's limits. /etc/hosts carries localhost, the pod's
own name (its FQDN first when it has a subdomain) and `spec.hostAliases`.
"""

from dataclasses import dataclass, field

from minikube_py.api.types import Obj, name_of, namespace_of

MAX_NAMESERVERS = 3  # what glibc reads
MAX_SEARCH_DOMAINS = 32
MAX_SEARCH_CHARS = 2048
CLUSTER_OPTIONS = ("ndots:5",)
HOSTNAME_MAX = 63

HOSTS_HEADER = """# Kubernetes-managed hosts file.
127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
fe00::0\tip6-mcastprefix
fe00::1\tip6-allnodes
fe00::2\tip6-allrouters
"""


@dataclass
class ResolverConfig:
    nameservers: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)


def parse_resolv_conf(text: str) -> ResolverConfig:
    """The nameserver, search and options lines of a resolv.conf (the last search wins,
    as in glibc)."""
    config = ResolverConfig()
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith(("#", ";")):
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            config.nameservers.append(fields[1])
        elif fields[0] == "search":
            config.searches = [d.rstrip(".") for d in fields[1:]]
        elif fields[0] == "options":
            config.options.extend(fields[1:])
    return config


def render_resolv_conf(pod: Obj, node_dns_ip: str, host_resolv_conf_text: str, zone: str) -> str:
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    host = parse_resolv_conf(host_resolv_conf_text)
    use_cluster = policy == "ClusterFirstWithHostNet" or (
        policy == "ClusterFirst" and not spec.get("hostNetwork")
    )
    if policy == "None":
        config = ResolverConfig()
    elif use_cluster and node_dns_ip:
        ns = namespace_of(pod)
        searches = [f"{ns}.svc.{zone}", f"svc.{zone}", zone, *host.searches]
        config = ResolverConfig([node_dns_ip], searches, list(CLUSTER_OPTIONS))
    else:
        config = host
    _merge_pod_dns_config(config, spec.get("dnsConfig") or {})

    lines = []
    searches = _fit_searches(_unique(config.searches))
    if searches:
        lines.append("search " + " ".join(searches))
    lines += [f"nameserver {server}" for server in config.nameservers[:MAX_NAMESERVERS]]
    if config.options:
        lines.append("options " + " ".join(config.options))
    return "".join(line + "\n" for line in lines)


def render_etc_hosts(pod: Obj, pod_ip: str, zone: str) -> str:
    spec = pod.get("spec") or {}
    hostname = pod_hostname(pod)
    lines = [HOSTS_HEADER]
    if spec.get("subdomain"):
        fqdn = f"{hostname}.{spec['subdomain']}.{namespace_of(pod)}.svc.{zone}"
        lines.append(f"{pod_ip}\t{fqdn}\t{hostname}\n")
    else:
        lines.append(f"{pod_ip}\t{hostname}\n")
    aliases = spec.get("hostAliases") or []
    if aliases:
        lines.append("\n# Entries added by HostAliases.\n")
        for alias in aliases:
            lines.append(
                f"{alias.get('ip', '')}\t" + "\t".join(alias.get("hostnames") or []) + "\n"
            )
    return "".join(lines)


def pod_hostname(pod: Obj) -> str:
    """`spec.hostname`, else the pod name, cut to a DNS label as the kubelet does."""
    name = str((pod.get("spec") or {}).get("hostname") or name_of(pod))
    return name[:HOSTNAME_MAX].rstrip("-.")


def _merge_pod_dns_config(config: ResolverConfig, dns_config: Obj) -> None:
    config.nameservers = _unique([*config.nameservers, *(dns_config.get("nameservers") or [])])
    config.searches = [*config.searches, *(dns_config.get("searches") or [])]
    merged: dict[str, str] = {}
    for option in config.options:
        merged[option.partition(":")[0]] = option
    for option in dns_config.get("options") or []:
        name = option.get("name", "")
        value = option.get("value")
        merged[name] = f"{name}:{value}" if value is not None else name
    config.options = list(merged.values())


def _fit_searches(searches: list[str]) -> list[str]:
    """The leading search domains that fit the kubelet's count and length limits."""
    kept: list[str] = []
    length = 0
    for domain in searches[:MAX_SEARCH_DOMAINS]:
        length += len(domain) + (1 if kept else 0)
        if length > MAX_SEARCH_CHARS:
            break
        kept.append(domain)
    return kept


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
