#!/usr/bin/env bash
# Installs everything minikube-py needs on a Debian 12 machine, as root: the system
# packages (Docker engine, etcd, nftables/iptables, busybox-static for the local pod
# image, DNS tools) and a virtualenv in .venv with the project and its dev tools.
# Idempotent: packages already present are not reinstalled.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  docker.io etcd-server nftables iptables iproute2 conntrack busybox-static
  dnsutils dnsmasq-base dnsperf ca-certificates
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Debian's own python3 (built with profile-guided and link-time optimization) runs the
# apiserver about 25% faster than a default build from source, which a PATH may put
# first (docs/performance.md).
PYTHON=python3
[[ -x /usr/bin/python3 ]] && PYTHON=/usr/bin/python3
if [[ ! -x .venv/bin/python ]]; then
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
    "$PYTHON" -m venv .venv
  fi
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'

if ! command -v kubectl >/dev/null; then
  echo "setup: warning: kubectl is not installed; the minikube-py CLI works without it," \
       "the kubectl end-to-end tests will fail" >&2
fi
echo "setup: ready"
