"""Intake rules shared by every way an incident enters: the dispatch area of an incident
(the key of the ``incidents`` topic) and the refusal of locations outside every area.
The areas are those of the registries the caller loaded (each registry's
``area.geojson``)."""

from __future__ import annotations

from collections.abc import Sequence

from engine.errors import UsageError
from engine.geo.areas import Area, area_by_id, area_of
from engine.models import Incident


class OutOfArea(UsageError):
    """The location is in no dispatch area, or names an unknown one."""


def with_area(incident: Incident, areas: Sequence[Area]) -> Incident:
    """The incident with ``area`` set: kept if given and known, else derived from the
    location. Raises OutOfArea for an unknown area or a location outside every area."""
    if incident.area is not None:
        if area_by_id(incident.area, areas) is None:
            known = ", ".join(a.id for a in areas) or "none loaded"
            raise OutOfArea(f"unknown dispatch area {incident.area!r} (known: {known})")
        return incident
    area = area_of(incident.location.lat, incident.location.lon, areas)
    if area is None:
        loc = incident.location
        where = "; ".join(_extent(a) for a in areas) or "no area loaded"
        raise OutOfArea(
            f"location lat={loc.lat} lon={loc.lon} is outside every dispatch area "
            f"({where}; lat and lon swapped?)"
        )
    return incident.model_copy(update={"area": area.id})


def _extent(area: Area) -> str:
    min_lat, min_lon, max_lat, max_lon = area.bbox()
    return f"{area.id} is about lat {min_lat:.2f}-{max_lat:.2f}, lon {min_lon:.2f}-{max_lon:.2f}"
