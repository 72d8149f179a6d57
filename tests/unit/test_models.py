from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from engine.models import (
    TOPIC_MODELS,
    Ack,
    CallOut,
    DeadLetter,
    Incident,
    IncidentType,
    Priority,
    new_incident_id,
)

pytestmark = pytest.mark.unit

REQUIRED_TYPES = {
    "fire", "medical", "fight", "theft", "traffic", "missing_person",
    "suspicious", "fraud", "flood", "school_gate", "other",
}  # fmt: skip


def test_incident_types_and_priorities() -> None:
    assert {t.value for t in IncidentType} >= REQUIRED_TYPES
    assert [p.value for p in Priority] == ["P1", "P2", "P3", "P4"]


def test_producer_may_omit_id_and_raised_at() -> None:
    raw = {"type": "fire", "priority": "P1", "location": {"lat": 22.8, "lon": 114.08}}
    incident = Incident.model_validate(raw)
    assert incident.id.startswith("INC-")
    assert incident.raised_at.tzinfo is not None
    assert incident.schema_version == 1


def test_contract_field_names_are_stable() -> None:
    """DESIGN.md §4 names these fields as a public contract: never renamed."""
    assert set(Incident.model_fields) >= {
        "id", "type", "priority", "location", "area", "address", "description",
        "reporter", "raised_at", "schema_version",
    }  # fmt: skip
    assert set(CallOut.model_fields) >= {
        "idempotency_key", "incident_id", "stage", "radio_id", "channel", "text",
        "priority", "schema_version",
    }  # fmt: skip
    assert set(Ack.model_fields) >= {"incident_id", "radio_id", "kind", "at", "schema_version"}


@pytest.mark.parametrize(
    ("patch", "fragment"),
    [
        ({"type": "arson"}, "type"),
        ({"priority": "P0"}, "priority"),
        ({"location": {"lat": 114.08, "lon": 22.8}}, "less than or equal to 90"),
        ({"location": {"lat": float("nan"), "lon": 114.0}}, "finite"),
        ({"raised_at": "2026-11-29T08:00:00"}, "UTC offset"),
        ({"schema_version": 99}, "unsupported schema_version 99"),
    ],
)
def test_invalid_incidents_are_refused_with_reason(patch: dict[str, object], fragment: str) -> None:
    raw: dict[str, object] = {
        "type": "fire",
        "priority": "P1",
        "location": {"lat": 22.8, "lon": 114.08},
        **patch,
    }
    with pytest.raises(ValidationError) as err:
        Incident.model_validate(raw)
    assert fragment in str(err.value)


def test_unknown_fields_are_kept_for_forward_compatibility() -> None:
    raw = {
        "type": "theft",
        "priority": "P3",
        "location": {"lat": 22.8, "lon": 114.08},
        "camera": "cam-7",
    }
    incident = Incident.model_validate(raw)
    assert json.loads(incident.to_json_bytes())["camera"] == "cam-7"


@given(
    lat=st.floats(-90, 90, allow_nan=False),
    lon=st.floats(-180, 180, allow_nan=False),
    address=st.text(max_size=200),
    kind=st.sampled_from(list(IncidentType)),
)
def test_incident_json_round_trip(lat: float, lon: float, address: str, kind: IncidentType) -> None:
    incident = Incident(
        type=kind,
        priority=Priority.P2,
        location={"lat": lat, "lon": lon},  # type: ignore[arg-type]
        address=address,
        raised_at=datetime(2026, 11, 29, 8, 30, tzinfo=UTC),
    )
    assert Incident.model_validate_json(incident.to_json_bytes()) == incident


def test_ids_are_radio_friendly_and_distinct() -> None:
    ids = {new_incident_id() for _ in range(2000)}
    assert len(ids) == 2000
    for i in ids:
        assert not set(i.split("-")[-1]) & set("01ILO")


def test_callout_idempotency_key_is_deterministic() -> None:
    assert CallOut.key_for("INC-1", 2, "R-0042") == CallOut.key_for("INC-1", 2, "R-0042")
    assert CallOut.key_for("INC-1", 1, "R-0042") != CallOut.key_for("INC-1", 2, "R-0042")


def test_dead_letter_keeps_original_bytes() -> None:
    dl = DeadLetter.for_bytes(b"\xff not json", topic="incidents", error="bad", reason="not_json")
    import base64

    assert base64.b64decode(dl.original_b64) == b"\xff not json"


def test_every_topic_has_a_model() -> None:
    from engine.config import LOGICAL_TOPICS

    assert set(TOPIC_MODELS) == set(LOGICAL_TOPICS)
