"""agent.lean_imports, in a fresh interpreter each (it acts on the process's imports)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path


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


def test_every_pyroute2_name_the_project_imports_is_served_lean() -> None:
    """A name missing from the table would run pyroute2's whole `__init__` (5 MB)."""
    root = Path(__file__).resolve().parents[2]
    statement = re.compile(r"^from pyroute2 import (?:\(([^)]*)\)|(.+))$", re.M)
    names = {
        name.split(" as ")[0].strip()
        for package in ("agent", "minikube_py")
        for source in (root / package).rglob("*.py")
        for match in statement.finditer(source.read_text())
        for name in (match.group(1) or match.group(2)).split(",")
        if name.strip()
    }
    assert "IPRoute" in names
    out = run(
        f"""
        import importlib.util, sys
        import pyroute2
        for name in {sorted(names)!r}:
            if importlib.util.find_spec("pyroute2." + name) is None:
                getattr(pyroute2, name)
        print("pyroute2.ndb.main" in sys.modules, "pyroute2.ipdb" in sys.modules)
        """
    )
    assert out.split() == ["False", "False"]
