"""`make demo DEMO_ONCE=1`, as a newcomer runs it: the demo finds no broker at its address,
starts one of its own, plays the default scenario, prints the summary, stops everything
it started (the broker included) and exits 0. The summary's facts are checked, and its
decisions fingerprint against the one recorded: the same decisions on every run."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.kafka_broker import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RECORDED_FINGERPRINT = "ee8606800699"
"""scenarios/tangxia-afternoon.yaml's decisions (2026-12-02, two runs in a row alike);
a change to the plan, the registry or the rules that changes a decision changes it"""


def processes_mentioning(*markers: str) -> set[int]:
    """Processes whose command line or environment mentions any of ``markers``."""
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            text = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
        except OSError:
            continue
        if any(m.encode() in text for m in markers):
            found.add(int(proc.name))
    return found


def test_make_demo_once_plays_the_default_scenario_and_leaves_nothing_running(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "ENGINE_DATA_DIR": str(tmp_path),
        "ENGINE_BROKER_PORT": str(port),
        "ENGINE_BROKER_CONTROLLER_PORT": str(free_port()),
        "ENGINE_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}",
        "ENGINE_API_PORT": str(free_port()),
    }
    done = subprocess.run(["make", "--no-print-directory", "demo", "DEMO_ONCE=1"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=420)  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-3000:]
    assert "started (pid" in out and "(the demo started it)" in out  # its own broker, stopped
    assert "console: http://127.0.0.1:" in out and "operator token: txe_" in out
    assert "fault: worker SIGKILLed and started again" in out
    assert "fire: escalated (stage 1, zone KZ063" in out
    assert "demo finished" in out

    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    theft, fire, gate = summary["incidents"]
    assert (theft["name"], theft["zone"], theft["state"]) == ("theft", "KZ090", "closed")
    assert fire["zone"] == "KZ118" and fire["stages"][1]["zone"] == "KZ063"
    assert fire["stages"][1]["after_s"] >= 44.5  # at the 45 s deadline, not before
    accepted = {g for a in fire["answers"] if a["kind"] == "accept" for g in a["groups"]}
    assert "KZ118" not in accepted and "KZ063" in accepted  # the silent team never answered
    assert gate["zone"] == "KZ140" and gate["called"].get("school") == 1  # 护学岗 at 16:30
    assert summary["pages_sent"] > 30 and summary["pages_repeated"] == 0  # across the SIGKILL
    assert summary["quorum_met_share"] == 1.0 and summary["nfpa_1225"]["met"] is True
    assert (tmp_path / "demo" / "summary.png").read_bytes()[:4] == b"\x89PNG"
    assert summary["decisions_fingerprint"] == RECORDED_FINGERPRINT, (
        "the default scenario decided differently from the recorded run: "
        + json.dumps([i["decisions"] for i in summary["incidents"]], ensure_ascii=False)
    )
    left = processes_mentioning(str(tmp_path), f"ENGINE_API_PORT={env['ENGINE_API_PORT']}\0")
    assert left == set(), f"processes left running: {left}"
