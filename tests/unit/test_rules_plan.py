from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.models import IncidentType, Priority
from engine.rules.plan import default_plan_bytes, load_plan, parse_plan, plan_version

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def test_default_plan_covers_every_type_and_priority() -> None:
    loaded = load_plan()
    for t in IncidentType:
        for p in Priority:
            assert loaded.plan.response_for(t, p) is not None, (t, p)
    assert loaded.version == plan_version(default_plan_bytes())
    assert loaded.version.startswith("sha256:")


def test_plan_version_follows_the_bytes() -> None:
    data = default_plan_bytes()
    assert parse_plan(data, "a").version == parse_plan(data, "b").version
    assert parse_plan(data + b"\n# a comment\n", "c").version != plan_version(data)


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = default_plan_bytes().decode("utf-8")
    assert old in text
    path = tmp_path / "plan.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_error_names_line_column_and_field_path(tmp_path: Path) -> None:
    path = _broken(tmp_path, "ack_timeout_s: 45", "ack_timeout_s: soon")
    with pytest.raises(ConfigError) as err:
        load_plan(path)
    line = _line_of(path, "ack_timeout_s: soon")
    assert f"{path}:{line}:24: responses.0.stages.0.ack_timeout_s:" in str(err.value)


def test_unknown_key_and_unknown_enum(tmp_path: Path) -> None:
    path = _broken(tmp_path, "frontage: true", "frontage: true\n        frontages: true")
    with pytest.raises(ConfigError, match=r"responses\.0\.stages\.0\.frontages: Extra inputs"):
        load_plan(path)
    path = _broken(tmp_path, "types: [fire]", "types: [arson]")
    with pytest.raises(ConfigError, match=r":\d+:\d+: responses\.0\.types\.0: Input should be"):
        load_plan(path)


def test_a_plan_that_leaves_a_type_uncovered_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(
        "name: tiny\nresponses:\n  - name: fires\n    types: [fire]\n    stages: [{}]\n",
        encoding="utf-8",
    )
    with pytest.raises(
        ConfigError, match=r"1:1: \(plan\): Value error, no response for medical/P1"
    ):
        load_plan(path)


def test_yaml_syntax_error_has_a_position(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text("name: x\nresponses: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"{path}:\d+:\d+: not valid YAML"):
        load_plan(path)


def test_plan_schema_is_exported_and_current() -> None:
    from engine.rules.plan import plan_json_schema

    on_disk = json.loads((REPO / "schemas" / "plan.schema.json").read_text(encoding="utf-8"))
    assert on_disk == plan_json_schema()
    assert "responses" in on_disk["required"]
