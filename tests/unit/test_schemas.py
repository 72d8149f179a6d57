from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import schemas

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def test_checked_in_schemas_match_the_models() -> None:
    assert schemas.stale(REPO / "schemas") == [], "run `engine schemas export` and commit"


def test_stale_detects_drift(tmp_path: Path) -> None:
    schemas.export(tmp_path)
    assert schemas.stale(tmp_path) == []
    path = tmp_path / "incidents.schema.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["required"] = []
    path.write_text(json.dumps(doc), encoding="utf-8")
    (tmp_path / "acks.schema.json").unlink()
    problems = schemas.stale(tmp_path)
    assert any("incidents.schema.json: differs" in p for p in problems)
    assert any("acks.schema.json: missing" in p for p in problems)


def test_incident_schema_names_the_contract() -> None:
    doc = json.loads(schemas.rendered_schemas()["incidents.schema.json"])
    assert set(doc["required"]) == {"type", "priority", "location"}
    assert doc["x-kafka-topic"] == "incidents"
