"""`engine decide` and `engine plan check` as an operator runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def _engine(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        input=stdin, capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
    )  # fmt: skip


def test_decide_reads_stdin_and_writes_decisions_in_order() -> None:
    lines = [
        {"id": i, "type": "fire", "priority": "P1", "location": {"lat": lat, "lon": 114.0842}}
        for i, lat in (("INC-A", 22.8031), ("INC-B", 22.8033))
    ]
    stdin = "\n".join(json.dumps(x) for x in lines) + "\n{broken\n"
    result = _engine(
        "decide", "--registry", "data/tangxia", "--at", "2026-11-30T14:00+08:00", stdin=stdin
    )
    assert result.returncode == 1  # one bad line
    assert "line 3: not JSON" in result.stderr
    a, b = (json.loads(x) for x in result.stdout.splitlines())
    assert (a["incident_id"], b["incident_id"]) == ("INC-A", "INC-B")
    assert a["zone"]["id"] != b["zone"]["id"]  # line 1 committed its zone
    assert a["decided_at"] == "2026-11-30T14:00:00+08:00"
    assert a["plan_version"].startswith("sha256:")


def test_plan_check_ok_and_broken(tmp_path: Path) -> None:
    ok = _engine("plan", "check", "engine/resources/plan-tangxia.yaml")
    assert ok.returncode == 0 and "OK" in ok.stdout
    bad = tmp_path / "plan.yaml"
    bad.write_text(
        "name: x\nresponses:\n  - name: r\n    types: [fire]\n"
        "    stages: [{quorum: {zone_team: maybe}}]\n"
    )
    result = _engine("plan", "check", str(bad))
    assert result.returncode == 1
    assert f"{bad}:5:" in result.stderr
    assert "responses.0.stages.0.quorum.zone_team" in result.stderr
