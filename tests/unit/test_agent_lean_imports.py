"""agent.lean_imports, in a fresh interpreter each (it acts on the process's imports)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(code: str) -> str:
    """Run `code` after `import agent.lean_imports`, warnings as errors; its stdout."""
    program = "import agent.lean_imports\n" + textwrap.dedent(code)
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", program], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_pyroute2_loads_only_what_is_used_and_still_all_on_demand() -> None:
    out = run(
        """
        import sys
        from pyroute2 import IPRoute, netns
        from pyroute2.netlink.exceptions import NetlinkError
        from pyroute2.iproute.linux import IPRoute as Defined
        assert IPRoute is Defined and callable(netns.setns)
        heavy = ("pyroute2.ndb.main", "pyroute2.ipdb", "sqlite3")
        print(sorted(m for m in heavy if m in sys.modules))
        import pyroute2
        print(pyroute2.NDB.__name__, "pyroute2.ndb.main" in sys.modules)
        """
    )
    assert out.splitlines() == ["[]", "NDB True"]


def test_requests_runs_without_a_charset_detector_and_reads_utf8() -> None:
    out = run(
        """
        import requests, requests.compat, sys
        response = requests.models.Response()
        response._content = '{"name": "café"}'.encode()
        print(requests.compat.chardet, "charset_normalizer" in sys.modules and
              sys.modules["charset_normalizer"], response.text == '{"name": "café"}',
              response.json()["name"])
        """
    )
    assert out.split() == ["None", "None", "True", "café"]
