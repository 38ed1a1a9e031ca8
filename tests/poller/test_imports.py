"""The poller's layers: it builds on the specs and `function.composed`, never on a composer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
POLLER = sorted(
    f"function.poller.{path.stem}"
    for path in (ROOT / "function" / "poller").glob("*.py")
    if path.stem != "__init__"
)
# Of the kinds' folders, the poller may use their specs and the IDs of Users and Teams;
# everything else there composes, and the poller reads what was composed, never composes.
KINDS = ("function.keys", "function.accounts")
ALLOWED = {
    "function.keys",
    "function.keys.spec",
    "function.accounts",
    "function.accounts.spec",
    "function.accounts.identity",
}
# The function's own entry points.
FUNCTION = ("function.fn", "function.render", "function.main")


def test_the_poller_imports_no_composer() -> None:
    program = (
        "import importlib, json, sys\n"
        f"for name in {POLLER!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded = json.loads(
        subprocess.run(  # noqa: S603 - this interpreter, our own program.
            [sys.executable, "-c", program], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout
    )
    assert "function.poller.cycle" in loaded
    assert "function.keys.spec" in loaded
    assert "function.accounts.spec" in loaded
    composers = [n for n in loaded if n.startswith(KINDS) and n not in ALLOWED]
    assert composers == []
    assert [n for n in FUNCTION if n in loaded] == []
