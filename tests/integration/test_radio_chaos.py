"""A short run of bench/chaos.py (`make chaos` runs the long one): a real `engine
gateway` process killed, unplugged and rebooted under garbled bytes, on the session's
broker and a real pty; every call-out delivered exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kafka_broker import SessionBroker

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_short_gateway_chaos(kafka: SessionBroker, tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    env = {**os.environ, "ENGINE_KAFKA_BOOTSTRAP": kafka.bootstrap, "CHAOS_WITHIN": "120"}
    args = ["--kills", "2", "--unplugs", "2", "--reboots", "1", "--out", str(out),
            "--workdir", str(tmp_path / "work")]  # fmt: skip
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "chaos.py"), *args],
        env=env, capture_output=True, text=True, timeout=600, check=False, cwd=REPO,
    )  # fmt: skip
    report = json.loads(out.read_text()) if out.exists() else None
    assert result.returncode == 0, (result.stdout, result.stderr[-3000:])
    assert report is not None
    assert report["faults"]["SIGKILL after modem accepted, before commit"] == 2
    assert report["faults"]["unplugged during a fan-out"] == 2
    assert report["faults"]["module rebooted during a fan-out"] == 1
    assert report["callouts"] == report["delivered"] == 5 * 11
    assert (report["duplicates"], report["lost"], report["crashes"]) == (0, 0, 0)
    assert report["bad_refused"] == report["bad_records"] == 7
