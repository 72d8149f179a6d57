"""`engine registry generate`: deterministic, the article's counts, inside the outline."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path

import pytest

from engine.cli import main
from engine.errors import UsageError
from engine.geo.distance import distance_m
from engine.registry.generate import generate
from engine.registry.models import Role
from engine.registry.registry import Registry, load_registry
from tests.areas import TANGXIA

pytestmark = pytest.mark.unit

SHIPPED = Path(__file__).parents[2] / "data" / "tangxia"


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return generate("tangxia", 2026)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(SHIPPED)


def test_same_seed_same_bytes_and_matches_the_shipped_copy(files: dict[str, bytes]) -> None:
    assert generate("tangxia", 2026) == files
    shipped = {p.name: p.read_bytes() for p in SHIPPED.iterdir() if p.is_file()}
    assert shipped == files, "data/tangxia is stale: regenerate with seed 2026"


def test_other_seed_other_data(files: dict[str, bytes]) -> None:
    assert generate("tangxia", 7)["units.geojson"] != files["units.geojson"]


def test_counts_match_the_article(registry: Registry) -> None:
    counts = registry.counts()
    assert counts["key_zone"] == 140
    assert counts["watch_group"] == 549
    assert counts["frontage_point"] == 1210
    assert counts["observer"] == 518
    assert counts["volunteers"] == 13_804
    assert counts["radios"] == 550
    roles = Counter(v.role for v in registry.volunteers.values())
    assert roles[Role.SECURITY_GUARD] == 2833
    assert roles[Role.PROPERTY_STAFF] == 278
    assert roles[Role.BUILDING_HEAD] == 2645
    assert roles[Role.SHOP_MANAGER] == 3640
    patrol = sum(len(registry.members(t)) for t in registry.patrol_bases)
    assert patrol == 2698
    assert sum(v.publicity for v in registry.volunteers.values()) == 2570
    assert all(len(registry.members(s)) >= 6 for s in registry.schools)


def test_every_point_inside_the_town_outline(registry: Registry) -> None:
    for p in registry.placed.values():
        assert TANGXIA.contains(p.location.lat, p.location.lon), p.id


def test_linked_units_cluster_around_their_zone(registry: Registry) -> None:
    for group in (*registry.key_zones.values(), *registry.watch_groups.values()):
        units = registry.linked_units(group.id)
        assert len(units) >= 10
        for unit in units:
            far = distance_m(
                group.location.lat, group.location.lon, unit.location.lat, unit.location.lon
            )
            assert far <= 401, (group.id, unit.id, far)


def test_names_are_chinese(registry: Registry) -> None:
    name = registry.volunteers["V00001"].name_zh
    assert all("\u4e00" <= ch <= "\u9fff" for ch in name)


def test_files_are_plain_utf8_csv_and_one_feature_per_line(files: dict[str, bytes]) -> None:
    rows = list(csv.DictReader(io.StringIO(files["volunteers.csv"].decode("utf-8"))))
    assert len(rows) == 13_804
    lines = files["key_zones.geojson"].decode().splitlines()
    assert len(lines) == 140 + 2
    assert json.loads(files["key_zones.geojson"])["type"] == "FeatureCollection"
    assert sum(len(b) for b in files.values()) < 10_000_000


def test_cli_generate_then_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tx"
    assert (
        main(["registry", "generate", "--town", "tangxia", "--seed", "3", "--out", str(out)]) == 0
    )
    assert main(["registry", "check", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ok (140 key_zone" in text
    assert "0 warning(s)" in text


def test_a_town_id_that_is_not_an_id_is_refused() -> None:
    with pytest.raises(UsageError, match="a lower-case id"):
        generate("Hu Men", 1)


def test_out_must_be_a_directory(tmp_path: Path) -> None:
    file = tmp_path / "f"
    file.write_text("x")
    assert (
        main(["registry", "generate", "--town", "tangxia", "--seed", "1", "--out", str(file)]) == 2
    )
