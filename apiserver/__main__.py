"""`python -m apiserver`: the apiserver process (see apiserver.server)."""

# First: aiohttp imported without its CA stores, smaller TLS buffers (resident memory).
import minikube_py.lean_tls  # noqa: F401

# isort: split

from apiserver.server import main

main()
