"""`engine coverage`, `engine plan compare` and `engine tail --bare` as operators run
them: plan compare's changed incidents checked against `engine decide` run once per plan."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from engine.config import Settings
from engine.kafka.produce import produce_incidents
from engine.models import Incident
from engine.rules.plan import default_plan_bytes
from tests.areas import TANGXIA

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
KINDS = ["fire", "medical", "fight", "theft", "traffic", "flood", "other", "fraud",
         "missing_person", "suspicious", "school_gate"]  # fmt: skip


def _engine(
    *args: str, stdin: str = "", settings: Settings | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if settings is not None:
        env["ENGINE_KAFKA_BOOTSTRAP"] = settings.kafka_bootstrap
        env["ENGINE_TOPIC_PREFIX"] = settings.topic_prefix
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args], input=stdin, env=env, cwd=REPO,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def generated_incidents(n: int, seed: int, start: datetime) -> list[dict[str, object]]:
    """Uniform over the Tangxia outline, every type and priority, one every 10 minutes."""
    rng = random.Random(seed)
    min_lat, min_lon, max_lat, max_lon = TANGXIA.bbox()
    out: list[dict[str, object]] = []
    while len(out) < n:
        lat, lon = rng.uniform(min_lat, max_lat), rng.uniform(min_lon, max_lon)
        if not TANGXIA.contains(lat, lon):
            continue
        out.append(
            {
                "id": f"INC-GEN-{len(out):04d}",
                "type": rng.choice(KINDS),
                "priority": rng.choice(["P1", "P2", "P3", "P4"]),
                "location": {"lat": lat, "lon": lon},
                "raised_at": (start + timedelta(minutes=10 * len(out))).isoformat(),
            }
        )
    return out


def lowered_plan(tmp_path: Path) -> Path:
    """The shipped plan with fire-urgent's first quorum lowered: team + 3 -> team + 2."""
    raw = yaml.safe_load(default_plan_bytes())
    stage0 = raw["responses"][0]["stages"][0]
    assert raw["responses"][0]["name"] == "fire-urgent" and stage0["quorum"]["linked_units"] == 3
    stage0["quorum"]["linked_units"] = 2
    path = tmp_path / "lowered.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def decided(plan: Path, lines: str) -> dict[str, dict[str, object]]:
    """`engine decide --independent` once for the plan: decision by incident, less the
    plan's version (which always differs)."""
    result = _engine("decide", "--registry", "data/tangxia", "--plan", str(plan),
                     "--independent", stdin=lines)  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = {}
    for line in result.stdout.splitlines():
        d = json.loads(line)
        d.pop("plan_version")
        out[d["incident_id"]] = d
    return out


def test_plan_compare_reports_exactly_the_incidents_decide_changes(tmp_path: Path) -> None:
    incidents = generated_incidents(1000, 16, datetime(2026, 11, 30, tzinfo=UTC))
    lines = "".join(json.dumps(i) + "\n" for i in incidents)
    src = tmp_path / "incidents.jsonl"
    src.write_text(lines, encoding="utf-8")
    old, new = REPO / "engine/resources/plan-tangxia.yaml", lowered_plan(tmp_path)

    report_file = tmp_path / "compare.json"
    result = _engine("plan", "compare", str(old), str(new), "--registry", "data/tangxia",
                     "--incidents", str(src), "--json", str(report_file))  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(report_file.read_text(encoding="utf-8"))
    assert report["incidents"] == 1000

    a, b = decided(old, lines), decided(new, lines)
    assert len(a) == len(b) == 1000
    changed_by_decide = {i for i in a if a[i] != b[i]}
    reported = {r["incident_id"] for r in report["incidents_changed"]}
    decision_changed = {
        r["incident_id"] for r in report["incidents_changed"] if "decision" in r["changes"]
    }
    assert decision_changed == changed_by_decide
    # only the stage-0 quorum of fire-urgent moved, so nothing else can change
    fires = {
        str(i["id"]) for i in incidents if i["type"] == "fire" and i["priority"] in ("P1", "P2")
    }
    assert changed_by_decide == fires and reported == fires
    for r in report["incidents_changed"]:
        assert (r["old"]["ack_quorum"], r["new"]["ack_quorum"]) == (4, 3)
        assert r["old"]["zone"] == r["new"]["zone"]
    # lowering a quorum can only help: never slower, never more escalations
    for r in report["incidents_changed"]:
        if r["old"]["quorum_s"] is not None:
            assert r["new"]["quorum_s"] is not None and r["new"]["quorum_s"] <= r["old"]["quorum_s"]
        assert r["new"]["stages"] <= r["old"]["stages"]
    assert report["new"]["escalated"] < report["old"]["escalated"]
    assert f"Changed incidents: {len(fires)}" in result.stdout


def test_plan_compare_with_recorded_acks(tmp_path: Path) -> None:
    """One P1 fire whose zone team (R118, also unit U01407's guard) and two more units
    accepted at 5, 12 and 20 s: quorum at 20 s under the team + 3 units, 12 s under 2."""
    at = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
    incident = {
        "id": "INC-ACKS",
        "type": "fire",
        "priority": "P1",
        "location": {"lat": 22.8031, "lon": 114.0842},
        "raised_at": at.isoformat(),
    }
    acks = [{"schema_version": 1, "incident_id": "INC-ACKS", "radio_id": radio, "kind": "accept",
             "at": (at + timedelta(seconds=s)).isoformat()}
            for radio, s in (("R118", 5), ("sms:V00785", 12), ("sms:V00784", 20))]  # fmt: skip
    (tmp_path / "inc.jsonl").write_text(json.dumps(incident) + "\n", encoding="utf-8")
    (tmp_path / "acks.jsonl").write_text("".join(json.dumps(a) + "\n" for a in acks))
    result = _engine("plan", "compare", "engine/resources/plan-tangxia.yaml",
                     str(lowered_plan(tmp_path)), "--registry", "data/tangxia",
                     "--incidents", str(tmp_path / "inc.jsonl"),
                     "--acks", str(tmp_path / "acks.jsonl"),
                     "--json", str(tmp_path / "r.json"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert report["replies"] == "recorded acks"
    (row,) = report["incidents_changed"]
    assert (row["old"]["quorum_s"], row["new"]["quorum_s"]) == (20.0, 12.0)
    assert row["changes"] == ["decision", "time_to_quorum"]


def test_coverage_writes_the_table_json_and_map(tmp_path: Path) -> None:
    out = tmp_path / "cov"
    result = _engine("coverage", "--registry", "data/tangxia", "--day", "2026-11-30",
                     "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "coverage.json").read_text(encoding="utf-8"))
    assert [r["label"] for r in report["rows"]] == ["all zones"] + [
        f"{h:02d}:00" for h in range(24)
    ]
    assert report["cells"] > 50_000 and report["zones"] == 140
    shares = report["rows"][0]["zone"]["area"]
    assert 0 < shares["300"] < shares["500"] < shares["1000"] <= 1
    best = report["siting"]["add"][0]
    assert best["units_gained"] > 0 and best["at_unit"].startswith("U")
    assert (out / "coverage.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / "coverage.txt").read_text(encoding="utf-8")
    assert table == result.stdout and f"#141: at unit {best['at_unit']}" in table

    one = _engine("coverage", "--registry", "data/tangxia", "--at", "2026-11-30T08:30+08:00",
                  "--no-map", "--out", str(tmp_path / "one"))  # fmt: skip
    assert one.returncode == 0, one.stderr
    rows = json.loads((tmp_path / "one" / "coverage.json").read_text(encoding="utf-8"))["rows"]
    assert [r["label"] for r in rows] == ["all zones", "08:00"]
    assert not (tmp_path / "one" / "coverage.png").exists()


def test_tail_bare_feeds_decide_and_compare_reads_the_topic(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    raw = generated_incidents(40, 7, now - timedelta(hours=2))
    incidents = [Incident.model_validate({**i, "area": "tangxia"}) for i in raw]
    asyncio.run(produce_incidents(kafka_settings, incidents))

    tailed = _engine("tail", "incidents", "--from-beginning", "--idle-timeout", "3", "--bare",
                     settings=kafka_settings)  # fmt: skip
    assert tailed.returncode == 0, tailed.stderr
    values = [json.loads(line) for line in tailed.stdout.splitlines()]
    assert sorted(v["id"] for v in values) == sorted(str(i["id"]) for i in raw)
    assert all("topic" not in v and v["schema_version"] == 1 for v in values)
    decisions = _engine("decide", "--registry", "data/tangxia", "--independent",
                        stdin=tailed.stdout)  # fmt: skip
    assert decisions.returncode == 0, decisions.stderr
    assert len(decisions.stdout.splitlines()) == 40

    piped = _engine("plan", "compare", "engine/resources/plan-tangxia.yaml",
                    "engine/resources/plan-tangxia.yaml", "--registry", "data/tangxia",
                    "--incidents", "-", stdin=tailed.stdout)  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    assert "Plan compare over 40 incidents" in piped.stdout
    assert "Changed incidents: 0 (none)" in piped.stdout

    report_file = tmp_path / "compare.json"
    result = _engine("plan", "compare", "engine/resources/plan-tangxia.yaml",
                     str(lowered_plan(tmp_path)), "--registry", "data/tangxia", "--since", "1d",
                     "--replies", "model", "--json", str(report_file),
                     settings=kafka_settings)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(report_file.read_text(encoding="utf-8"))
    assert report["incidents"] == 40
    fires = {str(i["id"]) for i in raw if i["type"] == "fire" and i["priority"] in ("P1", "P2")}
    assert {r["incident_id"] for r in report["incidents_changed"]} == fires
