from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import UsageError
from engine.geo.areas import TANGXIA, area_of, point_in_polygon
from engine.kafka.tail import record_to_json
from engine.models import Incident
from engine.rules.intake import with_area

pytestmark = pytest.mark.unit


def _incident(lat: float, lon: float, area: str | None = None) -> Incident:
    return Incident.model_validate(
        {"type": "fire", "priority": "P1", "location": {"lat": lat, "lon": lon}, "area": area}
    )


def test_town_centre_is_tangxia_and_far_points_are_not() -> None:
    assert area_of(22.80, 114.08) is TANGXIA
    assert area_of(23.02, 113.75) is None  # Dongguan city centre, another area
    assert area_of(114.08, 22.80) is None  # swapped


def test_incident_key_is_the_area() -> None:
    assert with_area(_incident(22.80, 114.08)).area == "tangxia"
    assert with_area(_incident(22.80, 114.08, "tangxia")).area == "tangxia"


def test_out_of_area_and_unknown_area_are_refused() -> None:
    with pytest.raises(UsageError, match="outside every dispatch area"):
        with_area(_incident(23.02, 113.75))
    with pytest.raises(UsageError, match="unknown dispatch area 'humen'"):
        with_area(_incident(22.80, 114.08, "humen"))


@given(st.floats(114.0, 114.16), st.floats(22.74, 22.87))
def test_inside_outline_implies_inside_bbox(lon: float, lat: float) -> None:
    min_lat, min_lon, max_lat, max_lon = TANGXIA.bbox()
    if point_in_polygon(lon, lat, TANGXIA.outline):
        assert min_lat <= lat <= max_lat
        assert min_lon <= lon <= max_lon


def test_point_in_polygon_square() -> None:
    square = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))
    assert point_in_polygon(0.5, 0.5, square)
    assert not point_in_polygon(1.5, 0.5, square)


def test_tail_shows_non_json_values_in_base64() -> None:
    rec = record_to_json("incidents", 0, 7, b"tangxia", b"\xff\xfe", 0)
    assert rec["value"] == {"_raw_b64": "//4="}
    assert rec["key"] == "tangxia"
    assert rec["offset"] == 7
    rec = record_to_json("incidents", 0, 8, None, '{"a": "火"}'.encode(), 0)
    assert rec["value"] == {"a": "火"}
