"""Reading a registry directory: GeoJSON features and CSV rows into entities.

Every problem is collected (none stops the reading) and pinned to its file, its line or
feature index, and its field. Cross-references between entities are checked
afterwards, in :mod:`engine.registry.checks`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from engine.errors import ConfigError
from engine.geo.areas import AREA_FILE, Area, load_area
from engine.geo.outline import metres_outside
from engine.registry.encoding import UndecodableError, decode_csv_bytes
from engine.registry.models import (
    PLACED_MODELS,
    REQUIRED_RADIO_COLUMNS,
    REQUIRED_VOLUNTEER_COLUMNS,
    Kind,
    Placed,
    Radio,
    Volunteer,
)
from engine.registry.problems import Problem, Severity, Where

MANIFEST = "registry.json"
VOLUNTEERS_CSV = "volunteers.csv"
RADIOS_CSV = "radios.csv"

FAR_OUTSIDE_M = 5_000.0
"""Beyond this distance outside the area outline a point is an error, not a warning:
a volunteer a few streets over the town line is plausible, 5 km is a typo."""

M = TypeVar("M", bound=BaseModel)


@dataclass
class Parsed:
    """What a registry directory holds, each entity with where it was read."""

    area: Area | None = None
    placed: list[tuple[Placed, Where]] = field(default_factory=list)
    volunteers: list[tuple[Volunteer, Where]] = field(default_factory=list)
    radios: list[tuple[Radio, Where]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def error(self, where: Where, fld: str | None, message: str) -> None:
        self.problems.append(Problem(where, fld, message))

    def warn(self, where: Where, fld: str | None, message: str) -> None:
        self.problems.append(Problem(where, fld, message, Severity.WARNING))


def read_registry_dir(path: Path, encoding: str | None = None) -> Parsed:
    parsed = Parsed()
    _read_manifest(path, parsed)
    geojson_files = sorted(p for p in path.glob("*.geojson") if p.name != AREA_FILE)
    if not geojson_files:
        parsed.error(Where(str(path)), None, "no *.geojson files in the registry directory")
    for file in geojson_files:
        _read_geojson(file, parsed)
    for name, required, model, out in (
        (VOLUNTEERS_CSV, REQUIRED_VOLUNTEER_COLUMNS, Volunteer, parsed.volunteers),
        (RADIOS_CSV, REQUIRED_RADIO_COLUMNS, Radio, parsed.radios),
    ):
        file = path / name
        if file.is_file():
            out.extend(_read_csv(file, required, model, encoding, parsed))  # type: ignore[arg-type]
        else:
            parsed.error(Where(name), None, "missing: every registry has this file")
    return parsed


def _read_manifest(path: Path, parsed: Parsed) -> None:
    file = path / MANIFEST
    if not file.is_file():
        return  # then any known area counts as the service area
    where = Where(MANIFEST)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        parsed.error(where, None, f"unreadable: {exc}")
        return
    area_id = data.get("area") if isinstance(data, dict) else None
    if not isinstance(area_id, str):
        parsed.error(where, "area", "missing: the dispatch area id, e.g. 'tangxia'")
        return
    try:
        area = load_area(path / AREA_FILE)
    except ConfigError as exc:
        parsed.error(Where(AREA_FILE), None, str(exc).removeprefix(f"{path / AREA_FILE}: "))
        return
    if area.id != area_id:
        parsed.error(where, "area", f"{area_id!r}, but {AREA_FILE} outlines {area.id!r}")
        return
    parsed.area = area


def _read_geojson(file: Path, parsed: Parsed) -> None:
    name = file.name
    try:
        text = file.read_text(encoding="utf-8-sig")
        doc = json.loads(text)
    except UnicodeDecodeError as exc:
        parsed.error(Where(name), None, f"not UTF-8 (RFC 7946 requires it): {exc.reason}")
        return
    except json.JSONDecodeError as exc:
        parsed.error(Where(name, exc.lineno), None, f"invalid JSON: {exc.msg} (column {exc.colno})")
        return
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        parsed.error(Where(name, 1), "type", "not a GeoJSON FeatureCollection")
        return
    features = doc.get("features")
    if not isinstance(features, list):
        parsed.error(Where(name, 1), "features", "must be a list of Feature objects")
        return
    lines = _feature_lines(text, len(features))
    for i, feature in enumerate(features):
        _read_feature(feature, Where(name, lines[i] if lines else None, i), parsed)


def _feature_lines(text: str, count: int) -> list[int] | None:
    """The line each feature starts on, found by decoding the features array value by
    value; None when the layout defeats this (the feature index still says where)."""
    match = re.search(r'"features"\s*:\s*\[', text)
    if match is None:
        return None
    decoder = json.JSONDecoder()
    pos, starts = match.end(), []
    try:
        for _ in range(count):
            while text[pos] in " \t\r\n,":
                pos += 1
            starts.append(pos)
            _, pos = decoder.raw_decode(text, pos)
    except (json.JSONDecodeError, IndexError):
        return None
    lines, line, last = [], 1, 0
    for start in starts:  # count newlines incrementally: the files have thousands
        line += text.count("\n", last, start)
        last = start
        lines.append(line)
    return lines


def _read_feature(feature: Any, where: Where, parsed: Parsed) -> None:
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        parsed.error(where, "type", "not a GeoJSON Feature")
        return
    props = feature.get("properties")
    if not isinstance(props, dict):
        parsed.error(where, "properties", "missing: needs at least id and kind")
        return
    entity_id = props.get("id")
    if isinstance(entity_id, str):
        where = Where(where.file, where.line, where.feature, entity_id)
    kind_value = props.get("kind")
    if kind_value is None:
        parsed.error(where, "properties.kind", "missing: every feature needs a kind")
        return
    try:
        kind = Kind(str(kind_value))
    except ValueError:
        known = ", ".join(k.value for k in Kind)
        parsed.error(where, "properties.kind", f"unknown kind {kind_value!r} (expected: {known})")
        return
    location = _read_point(feature.get("geometry"), where, parsed)
    if location is None:
        return
    data = {**props, "location": {"lat": location[0], "lon": location[1]}}
    for entity in _validate(PLACED_MODELS[kind], data, where, "properties", parsed):
        parsed.placed.append((entity, where))


def _read_point(geometry: Any, where: Where, parsed: Parsed) -> tuple[float, float] | None:
    """(lat, lon) of a Point geometry, or None after recording why not."""
    fld = "geometry.coordinates"
    if not isinstance(geometry, dict) or geometry.get("type") != "Point":
        parsed.error(where, "geometry.type", "must be a Point")
        return None
    coords = geometry.get("coordinates")
    if (
        not isinstance(coords, list)
        or len(coords) not in (2, 3)
        or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in coords)
        or not all(math.isfinite(c) for c in coords)
    ):
        parsed.error(where, fld, f"must be [lon, lat] numbers, got {coords!r}")
        return None
    lon, lat = float(coords[0]), float(coords[1])
    # without a manifest there is no outline: only the range is checked
    areas = (parsed.area,) if parsed.area else ()
    outside = (lambda a, b: min(metres_outside(x, a, b) for x in areas)) if areas else None
    inside = 0.0 if outside is None else outside(lat, lon) if _in_range(lat, lon) else math.inf
    if outside and inside > 0 and _in_range(lon, lat) and outside(lon, lat) == 0:
        parsed.error(
            where,
            fld,
            f"lat/lon swapped: GeoJSON order is [lon, lat], so {coords!r} reads as lat {lat}",
        )
        return None
    if not _in_range(lat, lon):
        parsed.error(where, fld, f"out of range: lat {lat} must be -90..90, lon {lon} -180..180")
        return None
    area_name = " or ".join(a.id for a in areas)
    if inside > FAR_OUTSIDE_M:
        parsed.error(
            where, fld, f"far outside the service area ({area_name}): {inside / 1000:.1f} km out"
        )
        return None
    if inside > 0:
        parsed.warn(where, fld, f"outside the {area_name} outline by {inside:.0f} m")
    return lat, lon


def _in_range(lat: float, lon: float) -> bool:
    return -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0


def _validate(
    model: type[M], data: dict[str, Any], where: Where, prefix: str, parsed: Parsed
) -> Iterator[M]:
    """Yields the validated entity, or records one problem per bad field."""
    try:
        entity = model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            loc = ".".join(str(p) for p in err["loc"])
            fld = f"{prefix}.{loc}" if prefix and loc else (loc or prefix or None)
            bad = err.get("input")
            # Name the offending value unless the message already does.
            show = err["type"] != "missing" and not isinstance(bad, dict | list | tuple)
            shown = f" (got {bad!r})" if show and repr(bad) not in err["msg"] else ""
            parsed.error(where, fld, f"{err['msg']}{shown}")
        return
    yield entity


def _read_csv(
    file: Path, required: tuple[str, ...], model: type[M], encoding: str | None, parsed: Parsed
) -> list[tuple[M, Where]]:
    name = file.name
    try:
        text, _ = decode_csv_bytes(file.read_bytes(), encoding)
    except UndecodableError as exc:
        parsed.error(Where(name, exc.line), None, str(exc))
        return []
    except ValueError as exc:  # unknown --encoding
        parsed.error(Where(name), None, str(exc))
        return []
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    missing = [c for c in required if c not in header]
    if missing:
        parsed.error(Where(name, 1), ", ".join(missing), "missing column(s) in the header row")
        return []
    known = set(model.model_fields)
    for column in header:
        if column not in known:
            parsed.warn(Where(name, 1), column, "unknown column, ignored")
    out: list[tuple[M, Where]] = []
    for row in reader:
        where = Where(name, reader.line_num)
        if None in row:
            parsed.error(where, None, "more cells than the header has columns")
            continue
        values = {k: (v or "").strip() for k, v in row.items() if k in known}
        if not any(values.values()):
            continue  # blank line Excel left at the end
        if values.get("id"):
            where = Where(name, reader.line_num, entity_id=values["id"])
        data = {k: v for k, v in values.items() if v != ""}
        out.extend((entity, where) for entity in _validate(model, data, where, "", parsed))
    return out
