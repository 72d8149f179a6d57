"""A stage that heals: the substitute for a linked unit that declined or could not be
reached, and the reasons given when a quorum can no longer be met or a zone team was
taken by a higher priority. Pure, like the rest of :mod:`engine.rules`.

The substitute is the nearest free linked unit to the scene, taken first from the
declined unit's own zone (its spare units, not yet called), then from the other zones
in order of their distance to the scene (within the stage's search radius): the
nearest other zone that has a free unit gives its nearest one. Free: not called for
this incident before, not marked unavailable, with someone reachable (a handset
reported offline falls back to its holder's phone, as in :mod:`engine.rules.decide`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from engine.geo.distance import distance_m
from engine.models import Decision
from engine.rules import reasons as R
from engine.rules.availability import Availability
from engine.rules.decide import KEY_ZONE, UNIT
from engine.rules.decision import Called, DispatchDecision, Pick
from engine.rules.plan import LoadedPlan
from engine.rules.world import Contact, World

if TYPE_CHECKING:
    from engine.rules.followup import Dispatch


def reachable(world: World, availability: Availability, entity_id: str) -> tuple[str, ...]:
    """The addresses to page for an entity now (see decide._reachable)."""
    out: list[str] = []
    for c in world.contacts.get(entity_id, ()):
        if c.volunteer_id in availability.unavailable:
            continue
        if c.radio_id is not None and c.radio_id in availability.offline_radios:
            out.append(Contact(c.volunteer_id, None, "").address)
        else:
            out.append(c.address)
    return tuple(dict.fromkeys(out))


def substitute(
    dispatch: Dispatch,
    unit_id: str,
    world: World,
    availability: Availability,
    plan: LoadedPlan,
    now: datetime,
    unreachable: bool = False,
) -> DispatchDecision | None:
    """A one-recipient decision calling the substitute for ``unit_id`` (which declined,
    or could not be reached), or None when no free unit is left in reach."""
    incident = dispatch.incident
    latest = dispatch.decisions[-1]
    own_zone = next(
        (
            str(getattr(r, "zone", None))
            for d in dispatch.decisions
            for r in d.recipients
            if r.id == unit_id and getattr(r, "zone", None)
        ),
        None,
    )
    called = {r.id for d in dispatch.decisions for r in d.recipients}
    lat, lon = incident.location.lat, incident.location.lon
    response = plan.plan.response_for(incident.type, incident.priority)
    radius = 2000.0
    if response is not None and latest.stage < len(response.stages):
        radius = response.stages[latest.stage].max_distance_m

    for zone, spare in _zones_in_order(world, own_zone, lat, lon, radius):
        best: tuple[float, str, tuple[str, ...]] | None = None
        for uid in world.registry.placed[zone].linked_units:  # type: ignore[attr-defined]
            if uid in called or uid in availability.unavailable:
                continue
            contacts = reachable(world, availability, uid)
            if not contacts:
                continue
            loc = world.registry.placed[uid].location
            d = distance_m(lat, lon, loc.lat, loc.lon)
            if best is None or (d, uid) < (best[0], best[1]):
                best = (d, uid, contacts)
        if best is None:
            continue
        d, uid, contacts = best
        zh_lost, en_lost = ("无法送达", "could not be reached") if unreachable else (
            "不能前往", "declined"
        )  # fmt: skip
        why = (
            R.both(
                f"{unit_id} {zh_lost}，由 {zone} 的备用联动单位 {uid}（{d:.0f}米）替补",
                f"{unit_id} {en_lost}: substitute {uid}, a spare linked unit of {zone} ({d:.0f} m)",
            )
            if spare
            else R.both(
                f"{unit_id} {zh_lost}，{own_zone or '本防区'} 无备用单位，由最近的其他防区 {zone} "
                f"的联动单位 {uid}（{d:.0f}米）替补",
                f"{unit_id} {en_lost}, no spare unit in {own_zone or 'its zone'}: substitute "
                f"{uid}, linked unit of the nearest other zone {zone} ({d:.0f} m)",
            )
        )
        recipient = Called(uid, UNIT, why, d, world.names.get(uid, uid), contacts, zone)
        quorum = getattr(latest, "quorum", None) or {}
        zone_pick = (
            Pick(latest.zone.id, latest.zone.distance_m) if latest.zone is not None else None
        )
        return DispatchDecision(
            incident_id=incident.id,
            stage=latest.stage,
            type=incident.type,
            priority=incident.priority,
            area=incident.area,
            response=str(getattr(latest, "response", "")),
            zone=zone_pick,
            zones=(),
            units=(Pick(uid, d),),
            recipients=(recipient,),
            reasons=(why,),
            quorum_zone_team=bool(quorum.get("zone_team", False)),
            quorum_linked_units=int(quorum.get("linked_units", 0)),
            ack_deadline=latest.ack_deadline,
            plan_version=plan.version,
            decided_at=now,
            final_stage=bool(getattr(latest, "final_stage", False)),
            command_centre=False,
        )
    return None


def _zones_in_order(
    world: World, own: str | None, lat: float, lon: float, radius: float
) -> Iterator[tuple[str, bool]]:
    """(zone id, whether it is the unit's own zone): its own first, then the others by
    their distance to the scene."""
    if own is not None and own in world.registry.placed:
        yield own, True
    for _, zone in world.nearby.ranked(lat, lon, KEY_ZONE, radius):
        if zone != own:
            yield zone, False


def substitution_model(decision: DispatchDecision, replaces: str) -> Decision:
    """The wire decision of a substitute: the stage's decision record, marked."""
    return Decision.model_validate(
        {**decision.to_wire(), "substitution": {"replaces": replaces, "by": decision.units[0].id}}
    )


def impossible_reason(unit_id: str) -> str:
    return R.both(
        f"{unit_id} 不能前往且无替补，本级确认人数已无法达到，立即升级",
        f"{unit_id} declined and no substitute is free: the quorum cannot be met, escalating now",
    )


def zone_declined_reason(zones: list[str]) -> str:
    z = ", ".join(zones) or "?"
    return R.both(
        f"先莞队 {z} 不能前往，本级确认已无法达到，立即升级",
        f"zone team {z} declined: the quorum cannot be met, escalating now",
    )


def preempted_reason(zones: list[str], by: str, priority: str) -> str:
    z = ", ".join(zones)
    return R.both(
        f"先莞队 {z} 被 {priority} 警情 {by} 调用，立即重新派警",
        f"zone team {z} taken by {priority} incident {by}: re-decided at once",
    )
