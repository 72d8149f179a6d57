"""The run summary from records alone: latencies, answers, escalations, NFPA 1225."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.scenario.summary import percentile, plot, render, summarise

pytestmark = pytest.mark.unit

T = "2026-12-01T16:30:{:02d}+08:00"


def _state(iid: str, met: bool, timeline: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "incident_id": iid, "state": "acknowledged" if met else "unanswered",
        "incident": {"id": iid, "type": "fire", "priority": "P1", "raised_at": T.format(0),
                     "address": "x"},
        "quorum": {"met": met}, "timeline": timeline,
    }  # fmt: skip


def _decision(iid: str, stage: int, zone: str, at: int) -> dict[str, Any]:
    return {
        "incident_id": iid, "stage": stage, "zone": {"id": zone, "distance_m": 480.0},
        "decided_at": T.format(at), "reasons": [f"stage {stage} reason"],
        "recipients": [{"id": zone, "kind": "key_zone", "contacts": [f"R-{zone}"]},
                       {"id": "U1", "kind": "unit", "contacts": ["sms:V1"]}],
    }  # fmt: skip


def test_summary_of_a_met_and_an_escalated_unanswered_incident(tmp_path: Path) -> None:
    states = [
        _state("A", True, [{"at": T.format(12), "state": "acknowledged", "what": "x; quorum met"}]),
        _state("B", False, [{"at": T.format(50), "state": "unanswered", "what": "no quorum"}]),
    ]
    decisions = [_decision("A", 0, "KZ1", 1), _decision("B", 0, "KZ2", 2),
                 _decision("B", 1, "KZ3", 47)]  # fmt: skip
    acks = [
        {"incident_id": "A", "radio_id": "sms:V1", "kind": "delivered", "at": T.format(3)},
        {"incident_id": "A", "radio_id": "R-KZ1", "kind": "accept", "at": T.format(10)},
        {"incident_id": "B", "radio_id": "R-KZ2", "kind": "decline", "at": T.format(20)},
    ]
    s = summarise(states, decisions, acks)
    a, b = s["incidents"]
    assert a["zone"] == "KZ1" and a["zone_distance_m"] == 480.0
    assert a["answers"] == [
        {"who": "KZ1", "groups": ["KZ1"], "radio_id": "R-KZ1", "kind": "accept", "after_s": 10.0}
    ]
    assert a["latency_s"] == {
        "raise_to_decision": 1.0, "raise_to_first_delivery": 3.0,
        "raise_to_first_accept": 10.0, "raise_to_quorum": 12.0, "raise_to_on_scene": None,
    }  # fmt: skip
    assert [st["zone"] for st in b["stages"]] == ["KZ2", "KZ3"] and b["stages"][1][
        "after_s"
    ] == 47.0
    assert b["quorum_met"] is False and b["latency_s"]["raise_to_quorum"] is None
    assert s["quorum_met_share"] == 0.5
    assert s["nfpa_1225"]["processed_within_60s"] == 1.0 and s["nfpa_1225"]["met"] is True
    assert s["stages"]["raise_to_quorum"]["n"] == 1
    text = render(s)
    assert "stage 1 (KZ3)" in text and "NFPA 1225" in text and "quorum met for 50%" in text
    plot(s, tmp_path / "q.png")
    assert (tmp_path / "q.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_nearest_rank_percentile() -> None:
    assert percentile([], 0.9) is None
    assert percentile([5.0], 0.5) == 5.0
    values = [float(v) for v in range(1, 11)]
    assert percentile(values, 0.9) == 9.0 and percentile(values, 0.5) == 5.0
    assert percentile(values, 1.0) == 10.0


def test_shipped_scenarios_load_and_a_bad_one_is_refused_with_line_and_field(
    tmp_path: Path,
) -> None:
    from engine.errors import ConfigError
    from engine.scenario.model import load_scenario

    shipped = sorted((Path(__file__).resolve().parents[2] / "scenarios").glob("*.yaml"))
    assert len(shipped) >= 2
    for path in shipped:
        scenario = load_scenario(path)
        assert scenario.incidents or scenario.bursts
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\nincidents:\n  - at_s: 0\n    name: a\n    type: fire\n    priority: P9\n"
        "    location: {lat: 22.8, lon: 114.08}\nactions:\n  - {at_s: 3, command: dance, "
        "incident: a}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        load_scenario(bad)
    text = str(err.value)
    assert f"{bad}:6:15: incidents.0.priority" in text
    assert f"{bad}:9:5: actions.0" in text and "command must be one of" in text
