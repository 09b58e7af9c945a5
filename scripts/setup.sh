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

if [[ ! -x .venv/bin/python ]]; then
  if ! python3 -m venv .venv 2>/dev/null; then
    rm -rf .venv
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
    python3 -m venv .venv
  fi
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'

if ! command -v kubectl >/dev/null; then
  echo "setup: warning: kubectl is not installed; the minikube-py CLI works without it," \
       "the kubectl end-to-end tests will fail" >&2
fi
echo "setup: ready"
