"""The many-areas example (docs/many-areas.md), as written: generated towns beside
Tangxia, two workers in one group each loading every area, incidents raised in each
town."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import DEFAULT_REGISTRY, Settings
from engine.geo.areas import AREA_FILE, load_area
from tests.worker_process import WorkerProcess, read_until, write_plan

pytestmark = pytest.mark.e2e

TOWNS = {"humen": ("虎门镇", 101), "changan": ("长安镇", 102)}


def _engine(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ENGINE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "ENGINE_TOPIC_PREFIX": settings.topic_prefix}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def test_two_workers_over_three_areas_each_incident_decided_in_its_own_town(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    registries = [DEFAULT_REGISTRY]
    for town, (name, seed) in TOWNS.items():
        out = tmp_path / town
        made = _engine(kafka_settings, "registry", "generate", "--town", town, "--seed",
                       str(seed), "--name", name, "--out", str(out))  # fmt: skip
        assert made.returncode == 0, made.stderr
        registries.append(out)
    flags = [f for r in registries for f in ("--registry", str(r))]
    plan = write_plan(tmp_path, 600)
    workers = [WorkerProcess(kafka_settings, tmp_path / f"w{n}.log", plan=plan,
                             registries=registries) for n in (1, 2)]  # fmt: skip
    try:
        for w in workers:
            w.start()
        raised: dict[str, str] = {}
        for registry in registries:
            area = load_area(registry / AREA_FILE)
            lat = sum(p[1] for p in area.outline) / len(area.outline)
            lon = sum(p[0] for p in area.outline) / len(area.outline)
            r = _engine(kafka_settings, "raise", *flags, "--type", "fire", "--priority", "P1",
                        "--lat", f"{lat:.5f}", "--lon", f"{lon:.5f}")  # fmt: skip
            assert r.returncode == 0, r.stderr
            raised[r.stdout.splitlines()[0].strip()] = area.id
        decisions = read_until(kafka_settings, "decisions", lambda d: {
            x["value"]["incident_id"] for x in d} >= set(raised), timeout=120)  # fmt: skip
    finally:
        for w in workers:
            if w.proc is not None and w.proc.poll() is None:
                w.stop()
    by_id = {d["value"]["incident_id"]: d["value"] for d in decisions}
    assert {i: by_id[i]["area"] for i in raised} == raised  # each in its own town
    for incident_id in raised:
        zone = by_id[incident_id]["zone"]
        assert zone is not None and zone["distance_m"] < 3000, by_id[incident_id]
    assert len(decisions) == len(raised)  # once each, whichever worker owns the area
