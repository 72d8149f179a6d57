"""`engine scenario run` end to end on the real broker: a short night fire whose nearest
zone team stays silent, with the gateway's serial cable pulled for 2 s. The summary's
facts are checked, not only the exit code: the zone chosen first, the escalation to the
next zone, who accepted, the quorum, nothing reported sent twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kafka_broker import SessionBroker, free_port

pytestmark = pytest.mark.e2e

SCENARIO = """\
name: short-night-fire
handsets: {reply: accept, reply_delay_s: 2, on_scene_after_s: 300, silent: [KZ118]}
ack_timeout_s: 8
incidents:
  - {at_s: 0, name: fire, type: fire, priority: P1, location: {lat: 22.8031, lon: 114.0842},
     address: 塘厦镇林村新围路12号}
actions:
  - {at_s: 1, command: note, incident: fire, reason: 三楼冒烟}
  - {at_s: 3, fault: unplug_radio, for_s: 2}
settle_s: 60
"""


def test_a_silent_zone_is_escalated_past_and_the_summary_says_so(
    kafka: SessionBroker, tmp_path: Path
) -> None:
    scenario = tmp_path / "short.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    out = tmp_path / "summary.json"
    env = {**os.environ, "ENGINE_KAFKA_BOOTSTRAP": kafka.bootstrap,
           "ENGINE_DATA_DIR": str(tmp_path), "ENGINE_TOPIC_PREFIX": "t-scenario-"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli", "scenario", "run", str(scenario),
         "--port", str(free_port()), "--json", str(out), "--plot", str(tmp_path / "q.png")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "operator note fire: 200 note added" in done.stdout
    assert "fire: escalated (stage 1" in done.stdout
    assert "the serial cable is back" in done.stdout
    summary = json.loads(out.read_text())
    [fire] = summary["incidents"]
    assert fire["name"] == "fire" and fire["zone"] == "KZ118"  # nearest, 478 m
    stage0, stage1 = fire["stages"][:2]
    assert stage0["zone"] == "KZ118" and stage1["zone"] not in (None, "KZ118")
    assert stage1["after_s"] >= 7.5  # at the 8 s deadline, not before
    accepted = {g for a in fire["answers"] if a["kind"] == "accept" for g in a["groups"]}
    assert "KZ118" not in accepted and stage1["zone"] in accepted
    assert fire["quorum_met"] is True and summary["quorum_met_share"] == 1.0
    assert fire["pages_sent"] >= 11 and summary["pages_repeated"] == 0  # two stages paged
    assert summary["nfpa_1225"]["met"] is True
    assert (tmp_path / "q.png").read_bytes()[:4] == b"\x89PNG"
