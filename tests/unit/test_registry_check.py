"""`engine registry check`: each deliberately broken file fails with file/line/field."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest

from engine.errors import ConfigError, UsageError
from engine.registry.cli import run_check
from engine.registry.registry import check_registry, load_registry

pytestmark = pytest.mark.unit

DATA = Path(__file__).parents[1] / "data" / "registry"
VALID = DATA / "valid"
BROKEN = DATA / "broken"


def overlay(case: str, tmp_path: Path) -> Path:
    """The valid registry with the broken case's files laid over it."""
    target = tmp_path / case
    shutil.copytree(VALID, target)
    for file in (BROKEN / case).iterdir():
        shutil.copy(file, target / file.name)
    return target


ERRORS = [
    (
        "duplicate_id",
        "error: units.geojson:4: feature 2 (U02): id: duplicate id 'U02'"
        " (first at units.geojson:3: feature 1 (U02))",
    ),
    (
        "dangling_link",
        "error: zones.geojson:2: feature 0 (KZ1): properties.linked_units[9]:"
        " dangling link: no unit 'U99'",
    ),
    (
        "too_few_units",
        "error: zones.geojson:2: feature 0 (KZ1): properties.linked_units:"
        " 9 linked units; the 1+10 model needs at least 10",
    ),
    (
        "radio_assigned_twice",
        "error: radios.csv:3 (R2): holder: radio assigned twice:"
        " holder 'V02' already has one (first at radios.csv:2 (R1))",
    ),
    (
        "handset_listed_twice",
        "error: radios.csv:3 (R2): poc_id: radio assigned twice:"
        " handset '860100001' already listed",
    ),
    (
        "sim_on_two_radios",
        "error: radios.csv:3 (R2): sms_number: SIM number '14400000001' already on another"
        " radio (first at radios.csv:2 (R1))",
    ),
    (
        "phone_on_two_radios",
        "error: radios.csv:3 (R2): sms_number: SIM number '13800000001' is also the phone of"
        " volunteer 'V01' (at volunteers.csv:2 (V01)): one number on two radios",
    ),
    (
        "phone_shared",
        "error: volunteers.csv:3 (V02): phone: phone '13800000001' is also the phone of"
        " volunteer 'V01' (first at volunteers.csv:2 (V01)): one number, two addresses to page",
    ),
    (
        "unknown_kind",
        "error: other.geojson:4: feature 2 (PT1): properties.kind: unknown kind 'patrol_car'",
    ),
    (
        "out_of_range",
        "error: other.geojson:5: feature 3 (OB1): geometry.coordinates: out of range: lat 122.82",
    ),
    (
        "lat_lon_swapped",
        "error: other.geojson:3: feature 1 (SCH1): geometry.coordinates:"
        " lat/lon swapped: GeoJSON order is [lon, lat]",
    ),
    (
        "far_outside",
        "error: other.geojson:6: feature 4 (EQ1): geometry.coordinates:"
        " far outside the service area (tangxia): 32.0 km out",
    ),
    ("bad_role", "error: volunteers.csv:4 (V03): role: Input should be 'building_head'"),
    ("missing_column", "error: volunteers.csv:1: phone: missing column(s) in the header row"),
    ("dangling_group", "error: volunteers.csv:5 (V04): group_id: dangling link: no group 'PT9'"),
    ("invalid_json", "error: units.geojson:4: invalid JSON: Expecting property name"),
    (
        "bad_time_window",
        "error: other.geojson:4: feature 2 (PT1): properties.shifts.0:"
        " Value error, time window '19:00 to 23:00' is not HH:MM-HH:MM",
    ),
    ("undecodable", "error: volunteers.csv:4: cannot decode as utf-8 or gb18030"),
]


@pytest.mark.parametrize(("case", "expected"), ERRORS, ids=[c for c, _ in ERRORS])
def test_broken_file_fails_with_file_line_field(
    case: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = overlay(case, tmp_path)
    assert run_check(_args(path)) == 1
    err = capsys.readouterr().err
    assert expected in err, err
    with pytest.raises(ConfigError, match="refused") as info:
        load_registry(path)
    assert expected.removeprefix("error: ") in str(info.value)


WARNINGS = [
    (
        "just_outside",
        "warning: other.geojson:6: feature 4 (EQ1): geometry.coordinates:"
        " outside the tangxia outline by 503 m",
    ),
    (
        "too_few_gate_posts",
        "warning: other.geojson:3: feature 1 (SCH1): min_posts:"
        " gate duty needs 6 volunteers, 5 have this school as group_id",
    ),
]


@pytest.mark.parametrize(("case", "expected"), WARNINGS, ids=[c for c, _ in WARNINGS])
def test_warnings_are_printed_but_pass(
    case: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_check(_args(overlay(case, tmp_path))) == 0
    out = capsys.readouterr()
    assert expected in out.err
    assert "ok (" in out.out


@pytest.mark.parametrize("case", ["gb18030_ok", "utf8_bom_ok"])
def test_excel_encodings_are_detected(case: str, tmp_path: Path) -> None:
    registry = load_registry(overlay(case, tmp_path))
    assert registry.volunteers["V03"].name_zh == "黄敏"


def test_explicit_encoding_overrides_detection(tmp_path: Path) -> None:
    path = overlay("gb18030_ok", tmp_path)
    assert load_registry(path, encoding="gbk").volunteers["V01"].name_zh == "陈伟"
    result = check_registry(path, encoding="utf-8")
    assert any("cannot decode as utf-8-sig" in str(p) for p in result.errors)


def test_the_valid_fixture_passes_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_check(_args(VALID)) == 0
    out = capsys.readouterr()
    assert out.err == ""
    assert "1 key_zone" in out.out


def test_not_a_directory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a directory"):
        run_check(_args(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="not a directory"):
        load_registry(tmp_path / "nope")


def _args(path: Path, encoding: str | None = None) -> argparse.Namespace:
    return argparse.Namespace(dir=path, encoding=encoding)
