#!/usr/bin/env bash
# Sets up the machine (scripts/setup.sh), then runs the whole suite: lint, format check,
# type check, unit tests, and the end-to-end tests against real etcd, Docker, network
# namespaces and kubectl. Needs root. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then
  echo "test: must run as root (network namespaces, Docker, nftables)" >&2
  exit 1
fi
scripts/setup.sh
PY=.venv/bin/python
echo "== ruff check"; $PY -m ruff check .
echo "== ruff format --check"; $PY -m ruff format --check .
echo "== mypy"; $PY -m mypy
echo "== pytest"
$PY -m pytest -q -p no:cacheprovider "$@"
