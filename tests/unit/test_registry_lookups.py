"""The loader API the rules engine and the worker use."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from datetime import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from engine.geo.points import Filter
from engine.registry.models import Equipment, Kind, TimeWindow
from engine.registry.registry import load_registry

pytestmark = pytest.mark.unit

VALID = Path(__file__).parents[1] / "data" / "registry" / "valid"


def test_lookups_by_id_group_and_holder() -> None:
    reg = load_registry(VALID)
    assert reg.area == "tangxia"
    zone = reg.key_zones["KZ1"]
    assert [u.id for u in reg.linked_units("KZ1")] == list(zone.linked_units)
    assert [v.id for v in reg.members("KZ1")] == ["V02"]
    assert reg.radio_of("V02") is not None
    assert reg.radio_of("V03") is None
    assert [r.id for r in reg.radios_of_group("PT1")] == ["R2"]
    assert reg.get("R1").id == "R1"
    assert reg.frontage_points["FP1"].radius_m == 100
    assert reg.equipment_points["EQ1"].has(Equipment.AED)
    with pytest.raises(KeyError):
        reg.get("nope")
    with pytest.raises(KeyError, match="not a zone"):
        reg.linked_units("U01")


def test_registry_is_immutable() -> None:
    reg = load_registry(VALID)
    with pytest.raises(TypeError):
        reg.placed["X"] = reg.placed["U01"]  # type: ignore[index]
    with pytest.raises(FrozenInstanceError):
        reg.area = "humen"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        reg.key_zones["KZ1"].name_zh = "x"  # type: ignore[misc]


def test_spatial_index_from_registry() -> None:
    reg = load_registry(VALID)
    index = reg.spatial_index()
    (hit,) = index.nearest(22.8, 114.08, 1, Filter.of(kinds=Kind.KEY_ZONE))
    assert hit.id == "KZ1"
    assert hit.distance_m == 0.0
    unit = reg.units["U01"]
    told = index.within_own_radius(unit.location.lat, unit.location.lon)
    assert [h.id for h in told] == ["FP1"]


def test_time_windows_cross_midnight() -> None:
    night = TimeWindow.model_validate("20:00-08:00")
    assert night.contains(time(23, 0))
    assert night.contains(time(7, 59))
    assert not night.contains(time(8, 0))
    assert str(night) == "20:00-08:00"
    assert not TimeWindow.model_validate("07:20-08:00").contains(time(8, 0))
