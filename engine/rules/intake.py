"""Intake rules shared by every way an incident enters: the dispatch area of an incident
(the key of the ``incidents`` topic) and the refusal of locations outside every area."""

from __future__ import annotations

from engine.errors import UsageError
from engine.geo.areas import area_by_id, area_of
from engine.models import Incident


class OutOfArea(UsageError):
    """The location is in no dispatch area, or names an unknown one."""


def with_area(incident: Incident) -> Incident:
    """The incident with ``area`` set: kept if given and known, else derived from the
    location. Raises OutOfArea for an unknown area or a location outside every area."""
    if incident.area is not None:
        if area_by_id(incident.area) is None:
            raise OutOfArea(f"unknown dispatch area {incident.area!r}")
        return incident
    area = area_of(incident.location.lat, incident.location.lon)
    if area is None:
        loc = incident.location
        raise OutOfArea(
            f"location lat={loc.lat} lon={loc.lon} is outside every dispatch area "
            "(Tangxia is about lat 22.74-22.87, lon 114.00-114.16; lat and lon swapped?)"
        )
    return incident.model_copy(update={"area": area.id})
