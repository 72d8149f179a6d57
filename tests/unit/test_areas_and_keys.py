from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import ConfigError, UsageError
from engine.geo.areas import AREA_FILE, area_geojson, area_of, load_area, point_in_polygon
from engine.kafka.tail import record_to_json
from engine.models import Incident
from engine.registry.generate import generate, town_outline
from engine.rules.intake import with_area
from tests.areas import TANGXIA

pytestmark = pytest.mark.unit


def _incident(lat: float, lon: float, area: str | None = None) -> Incident:
    return Incident.model_validate(
        {"type": "fire", "priority": "P1", "location": {"lat": lat, "lon": lon}, "area": area}
    )


def test_town_centre_is_tangxia_and_far_points_are_not() -> None:
    assert area_of(22.80, 114.08, [TANGXIA]) is TANGXIA
    assert area_of(23.02, 113.75, [TANGXIA]) is None  # Dongguan city centre, another area
    assert area_of(114.08, 22.80, [TANGXIA]) is None  # swapped


def test_incident_key_is_the_area() -> None:
    assert with_area(_incident(22.80, 114.08), [TANGXIA]).area == "tangxia"
    assert with_area(_incident(22.80, 114.08, "tangxia"), [TANGXIA]).area == "tangxia"


def test_out_of_area_and_unknown_area_are_refused() -> None:
    with pytest.raises(UsageError, match="outside every dispatch area"):
        with_area(_incident(23.02, 113.75), [TANGXIA])
    with pytest.raises(UsageError, match="unknown dispatch area 'humen'"):
        with_area(_incident(22.80, 114.08, "humen"), [TANGXIA])


def test_outlines_are_data_and_generated_towns_do_not_overlap(tmp_path: Path) -> None:
    towns = [town_outline(f"town{n}", seed) for n, seed in enumerate(range(100, 108))]
    for town in towns:
        path = tmp_path / f"{town.id}.geojson"
        path.write_bytes(area_geojson(town))
        assert load_area(path) == town  # round trip through the file
        lat0 = sum(p[1] for p in town.outline) / len(town.outline)
        lon0 = sum(p[0] for p in town.outline) / len(town.outline)
        others = [t for t in (*towns, TANGXIA) if t is not town]
        assert area_of(lat0, lon0, [town, *others]) is town
        assert all(not o.contains(lat0, lon0) for o in others)
        for lon, lat in town.outline:  # no vertex of one town inside another
            assert not any(o.contains(lat, lon) for o in others)
    humen = with_area(_incident(*_centre(towns[3])), [TANGXIA, *towns])
    assert humen.area == "town3"
    assert AREA_FILE in generate("town3", 103)


def _centre(area: object) -> tuple[float, float]:
    outline = area.outline  # type: ignore[attr-defined]
    return sum(p[1] for p in outline) / len(outline), sum(p[0] for p in outline) / len(outline)


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ({"type": "Feature", "properties": {"name": "x"}, "geometry": None}, "properties.id"),
        ({"type": "Feature", "properties": {"id": "a", "name": "x"},
          "geometry": {"type": "Point", "coordinates": [1, 2]}}, "geometry.type"),
        ({"type": "Feature", "properties": {"id": "a", "name": "x"},
          "geometry": {"type": "Polygon", "coordinates": [[[1, 2], [3, 400]]]}},
         "coordinates[0][1]"),
    ],
)  # fmt: skip
def test_a_bad_outline_is_refused_with_file_and_field(
    tmp_path: Path, doc: object, fragment: str
) -> None:
    path = tmp_path / AREA_FILE
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ConfigError, match=f"{AREA_FILE}: .*{fragment}".replace("[", r"\[")):
        load_area(path)


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
