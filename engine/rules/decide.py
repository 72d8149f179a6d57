"""The decision: who is called for an incident at one stage, and why.

``decide`` is stage 0 (the "1+10" call-out); ``escalate`` runs the next rung of the
plan's ladder. Both are pure: the same world, availability, plan, dispatch history and
``now`` give the same Decision, byte for byte (see :func:`decision_json`).

Ordering rules, so that output is deterministic: candidates rank by (distance, id) —
exactly the spatial index's order — and recipients are listed school-gate posts first
("incidents near a school in duty windows go to them first"), then zone teams, their
linked units, watch groups, door-front points, patrols, observers, the command centre.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from math import asin, sin, sqrt  # compiled (mypyc): sin, sqrt are C calls
from operator import itemgetter
from typing import Protocol
from zoneinfo import ZoneInfo

from engine.models import Decision, Incident
from engine.registry.models import (
    Equipment,
    Kind,
    Observer,
)
from engine.rules import reasons as R
from engine.rules.availability import Availability, Fix, ObserverFixes
from engine.rules.decision import Called, DispatchDecision, Pick
from engine.rules.nearby import _TWO_R, haversine_pre_m
from engine.rules.patrol_live import ranked_live
from engine.rules.plan import LoadedPlan, Plan, Response, Stage
from engine.rules.world import Contact, World

COMMAND_CENTRE = "command_centre"

SCHOOL = Kind.SCHOOL.value
KEY_ZONE = Kind.KEY_ZONE.value
UNIT = Kind.UNIT.value
WATCH_GROUP = Kind.WATCH_GROUP.value
FRONTAGE_POINT = Kind.FRONTAGE_POINT.value
PATROL_BASE = Kind.PATROL_BASE.value
OBSERVER = Kind.OBSERVER.value

# Recipient kinds in the order they are listed (school-gate posts first).
KIND_ORDER = {
    SCHOOL: 0,
    KEY_ZONE: 1,
    UNIT: 2,
    WATCH_GROUP: 3,
    FRONTAGE_POINT: 4,
    PATROL_BASE: 5,
    OBSERVER: 6,
    COMMAND_CENTRE: 7,
}


class _Add(Protocol):
    """decide's local ``add``: adds a recipient, False if nobody in it is reachable."""

    def __call__(
        self,
        entity_id: str,
        kind: str,
        why: str,
        d: float | None,
        zone: str | None = None,
        posts: int | None = None,
    ) -> bool: ...


class NoStageLeft(Exception):
    """The plan's ladder is exhausted: the incident is unanswered."""


@dataclass(frozen=True, slots=True)
class History:
    """What earlier stages of this incident already called (empty for stage 0). Who was
    already paged is the call-outs' concern: engine.rules.callouts.paged_before."""

    entities: frozenset[str] = frozenset()
    last_zone_distance_m: float = 0.0

    @classmethod
    def of(cls, decisions: Iterable[Decision | DispatchDecision]) -> History:
        entities: set[str] = set()
        last = 0.0
        for d in decisions:
            entities.update(r.id for r in d.recipients)
            if d.zone is not None:
                last = max(last, d.zone.distance_m)
        return cls(frozenset(entities), last)


_NO_HISTORY = History()
"""Stage 0's history (immutable, so one value serves every decision)."""


class _Draft:
    """Recipients of one stage while they are being chosen."""

    __slots__ = ("command_centre_why", "preempted", "reasons", "recipients", "units", "zones")

    def __init__(self, reasons: list[str]) -> None:
        self.recipients: list[Called] = []
        self.reasons = reasons
        self.zones: list[Pick] = []
        self.units: list[Pick] = []
        self.preempted: list[str] = []
        self.command_centre_why: list[tuple[str, str]] = []


@lru_cache(maxsize=8)
def _zone(tz: str) -> ZoneInfo:
    return ZoneInfo(tz)


def decide(
    incident: Incident,
    world: World,
    availability: Availability,
    plan: LoadedPlan,
    now: datetime,
) -> DispatchDecision:
    """Stage 0: the first call-out for a new incident."""
    return _decide_stage(incident, world, availability, plan, now, 0, _NO_HISTORY)


def escalate(
    incident: Incident,
    world: World,
    availability: Availability,
    plan: LoadedPlan,
    now: datetime,
    previous: list[Decision] | list[DispatchDecision],
) -> DispatchDecision:
    """The next rung of the ladder after ``previous`` stages missed their quorum.
    Raises NoStageLeft when the plan has no further stage."""
    response = _response(incident, plan)
    # the stage after the last one run (substitutes and re-decisions repeat a stage)
    stage = previous[-1].stage + 1 if previous else 0
    if stage >= len(response.stages):
        raise NoStageLeft(incident.id)
    return _decide_stage(incident, world, availability, plan, now, stage, History.of(previous))


def redecide(
    incident: Incident,
    world: World,
    availability: Availability,
    plan: LoadedPlan,
    now: datetime,
    previous: list[Decision] | list[DispatchDecision],
) -> DispatchDecision:
    """The current stage decided again (its zone team was taken by a higher priority):
    nobody called before is called again, so the next available zone comes in."""
    stage = previous[-1].stage if previous else 0
    return _decide_stage(incident, world, availability, plan, now, stage, History.of(previous))


@lru_cache(maxsize=64)
def _seconds(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def _response(incident: Incident, plan: LoadedPlan) -> Response:
    key = (id(plan.plan), incident.type, incident.priority)
    found = _response_cache.get(key)
    if found is not None and found[0] is plan.plan:
        return found[1]
    response = plan.plan.response_for(incident.type, incident.priority)
    if response is None:  # the plan validator guarantees a catch-all
        raise ValueError(f"plan has no response for {incident.type}/{incident.priority}")
    if len(_response_cache) >= 1024:
        _response_cache.clear()
    _response_cache[key] = (plan.plan, response)  # holds the plan: its id stays its own
    return response


_response_cache: dict[tuple[int, object, object], tuple[Plan, Response]] = {}
"""(plan by id, type, priority) -> (the plan, its response): plans are frozen."""
_local_cache: dict[tuple[datetime, str], datetime] = {}
"""(now, time zone) -> now in that zone: decisions made at the same instant."""


def _local(now: datetime, tz: str) -> datetime:
    """``now.astimezone(ZoneInfo(tz))``, remembered (equal datetimes are the same
    instant, or both naive and equal: either way the same local time)."""
    key = (now, tz)
    local = _local_cache.get(key)
    if local is None:
        if len(_local_cache) >= 4096:
            _local_cache.clear()
        local = _local_cache[key] = now.astimezone(_zone(tz))
    return local


_new = tuple.__new__
"""``_new(Called, (...))`` is what ``Called(...)`` does, minus a Python-level frame."""
_FIRST = itemgetter(0)
_DIST_ID = itemgetter(3, 0)
"""Sort key of recipients within one kind: (distance, id), as ``Called`` fields."""
_KINDS = tuple(KIND_ORDER)
_text_cache: dict[tuple[object, ...], str] = {}
"""Reason texts that depend on few values (plan stage, quorum, unit counts)."""
_blocked_cache: list[tuple[frozenset[str], frozenset[str], frozenset[str]]] = []
"""(unavailable, offline, their union) of the last availability seen: the worker hands
the same two frozensets to decision after decision until something changes."""


def _cached(make: Callable[..., str], *args: object) -> str:
    """``make(*args)``, remembered: for reason texts that depend on few values."""
    key = (make, *args)
    text = _text_cache.get(key)
    if text is None:
        if len(_text_cache) >= 4096:
            _text_cache.clear()
        text = _text_cache[key] = make(*args)
    return text


def _observer_why(km: float, where: str) -> str:
    return R.both(
        f"流动观察哨协查（{km:g}公里内）",
        f"lookout broadcast: observer within {km:g} km ({where} position)",
    )


def _lookout_sent(sent: int) -> str:
    return R.both(f"协查通报发送给 {sent} 个流动观察哨", f"lookout sent to {sent} mobile observers")


def _blocked(unavailable: frozenset[str], offline: frozenset[str]) -> frozenset[str]:
    if _blocked_cache:
        u, o, both = _blocked_cache[0]
        if u is unavailable and o is offline:
            return both
    both = unavailable | offline
    _blocked_cache[:] = [(unavailable, offline, both)]
    return both


class _Ctx:
    """The recipients of one stage while they are chosen, and what ``add`` needs."""

    __slots__ = ("availability", "blocked", "by_kind", "callee", "seen", "units_mixed", "world")

    def __init__(
        self,
        seen: set[str],
        callee: dict[str, tuple[str | None, tuple[str, ...], frozenset[str]]],
        blocked: frozenset[str],
        world: World,
        availability: Availability,
    ) -> None:
        self.seen = seen
        self.callee = callee
        self.blocked = blocked
        self.world = world
        self.availability = availability
        self.by_kind: dict[str, list[Called]] = {}
        self.units_mixed = False
        """True once a second group's linked units joined the kind's list"""
        """recipients by kind; each kind's list comes out in (distance, id) order except
        linked units (several groups' units interleave), which are sorted at the end"""

    def add(
        self,
        entity_id: str,
        kind: str,
        why: str,
        d: float | None,
        zone: str | None = None,
        posts: int | None = None,
    ) -> bool:
        """Adds a recipient with its reachable contacts; False if nobody can be reached.
        A person in two called groups (a zone member who is also a unit's guard) is
        listed for both, and paged once (see engine.rules.callouts).
        (:func:`_linked_units` and :func:`_observers` write this out inline.)"""
        seen = self.seen
        if entity_id in seen:
            return False
        info = self.callee.get(entity_id)
        if info is None:
            return False
        name, contacts, people = info
        if not people.isdisjoint(self.blocked):
            contacts = _reachable_addresses(self.world, self.availability, entity_id)
        if not contacts:
            return False
        if name is None:
            raise KeyError(entity_id)  # contacts for an entity the registry lacks
        seen.add(entity_id)
        # a NamedTuple built as the tuple it is (Called(...) adds a Python-level call)
        called = _new(Called, (entity_id, kind, why, d, name, contacts, zone, posts))
        bucket = self.by_kind.get(kind)
        if bucket is None:
            self.by_kind[kind] = [called]
        else:
            bucket.append(called)
        return True


def _decide_stage(
    incident: Incident,
    world: World,
    availability: Availability,
    plan: LoadedPlan,
    now: datetime,
    stage_no: int,
    history: History,
) -> DispatchDecision:
    response = _response(incident, plan)
    stage = response.stages[stage_no]
    location = incident.location
    lat, lon = location.lat, location.lon
    n_stages = len(response.stages)
    # _cached(...) with the lookup written out (the texts are nearly always there)
    text = _text_cache.get((R.plan_response, response.name, stage_no, n_stages))
    if text is None:
        text = _cached(R.plan_response, response.name, stage_no, n_stages)
    draft = _Draft([text])
    seen = set(history.entities)
    unavailable, offline = availability.unavailable, availability.offline_radios
    ctx = _Ctx(seen, world.callee, _blocked(unavailable, offline), world, availability)
    add = ctx.add
    by_kind = ctx.by_kind

    local = None
    if stage.schools_within_m is not None:
        local = _local(now, plan.plan.timezone)  # duty windows are local time
        _schools(world, availability, plan, stage, lat, lon, local, add)
    if stage.key_zones:
        _key_zones(incident, world, availability, response, stage, lat, lon, history, draft, ctx)
    if stage.watch_groups:
        _watch_groups(world, availability, stage, lat, lon, draft, ctx)
    if stage.frontage:
        _frontage(world, availability, plan, lat, lon, add)
    if stage.patrol:
        if local is None:
            local = _local(now, plan.plan.timezone)
        _patrol(world, availability, lat, lon, local, draft, add, plan.plan.observer_max_age_s)
    if stage.observers_within_m is not None:
        _observers(world, availability, plan, stage, lat, lon, now, draft, ctx)

    # every recipient has at least one contact (add refuses the others)
    if stage.command_centre:
        draft.command_centre_why.append(("预案要求", "the plan's ladder says so"))
    if not by_kind:
        draft.command_centre_why.append(("本级无人可呼叫", "nobody could be called at this stage"))
    if draft.command_centre_why:
        _command_centre(plan, draft)
    if draft.recipients:  # the command centre: last in KIND_ORDER
        by_kind[COMMAND_CENTRE] = draft.recipients

    equipment = _equipment(world, response.equipment, lat, lon, draft.reasons)
    quorum = stage.quorum
    units_called = len(draft.units)
    if history.entities:
        units_called += _units_called_before(history, world)
    units_needed = min(quorum.linked_units, units_called)
    zone_team = quorum.zone_team and bool(draft.zones or history.last_zone_distance_m)
    timeout = stage.ack_timeout_s
    text = _text_cache.get((R.quorum, zone_team, units_needed, timeout))
    if text is None:
        text = _cached(R.quorum, zone_team, units_needed, timeout)
    draft.reasons.append(text)
    # listed by KIND_ORDER, then (distance, id): the same order as sorting every
    # recipient by (KIND_ORDER[kind], distance, id), since ids are unique
    if ctx.units_mixed:  # (one group's units come in (distance, id) order already)
        by_kind[UNIT].sort(key=_DIST_ID)
    if len(by_kind) == 1:
        recipients = tuple(next(iter(by_kind.values())))
    else:
        ordered: list[Called] = []
        for kind in _KINDS:
            bucket = by_kind.get(kind)
            if bucket is not None:
                ordered += bucket
        recipients = tuple(ordered)

    # positional, in DispatchDecision's field order (a test holds the order)
    return _new(
        DispatchDecision,
        (
            incident.id,  # incident_id
            stage_no,  # stage
            incident.type,  # type
            incident.priority,  # priority
            incident.area,  # area
            response.name,  # response
            draft.zones[0] if draft.zones else None,  # zone
            tuple(draft.zones),  # zones
            tuple(draft.units),  # units
            recipients,  # recipients
            tuple(draft.reasons),  # reasons
            zone_team,  # quorum_zone_team
            units_needed,  # quorum_linked_units
            now + _seconds(timeout),  # ack_deadline
            plan.version,  # plan_version
            now,  # decided_at
            stage_no == n_stages - 1,  # final_stage
            bool(draft.command_centre_why),  # command_centre
            tuple(equipment),  # equipment
            tuple(draft.preempted),  # preempted
        ),
    )


# --- who is reachable ---------------------------------------------------------------
def _reachable_addresses(
    world: World, availability: Availability, entity_id: str
) -> tuple[str, ...]:
    return tuple(c.address for c in _reachable(world, availability, entity_id))


def _reachable(world: World, availability: Availability, entity_id: str) -> Iterator[Contact]:
    """An entity's contacts minus unavailable volunteers; a handset reported offline
    falls back to SMS on the holder's own phone (a PoC outage is not a phone outage)."""
    unavailable = availability.unavailable
    offline = availability.offline_radios
    for c in world.contacts.get(entity_id, ()):
        if c.volunteer_id in unavailable:
            continue
        if c.radio_id is not None and c.radio_id in offline:
            phone = world.registry.volunteers[c.volunteer_id].phone
            yield Contact(c.volunteer_id, None, phone)
        else:
            yield c


def _units_called_before(history: History, world: World) -> int:
    placed = world.registry.placed
    return sum(
        1 for e in history.entities if (p := placed.get(e)) is not None and p.kind is Kind.UNIT
    )


# --- groups -------------------------------------------------------------------------
def _key_zones(
    incident: Incident,
    world: World,
    availability: Availability,
    response: Response,
    stage: Stage,
    lat: float,
    lon: float,
    history: History,
    draft: _Draft,
    ctx: _Ctx,
) -> None:
    wanted = stage.key_zones
    commitments = availability.commitments
    unavailable = availability.unavailable
    called_before = history.entities
    names = world.names
    # wanted >= 1 here; the count is tested after each pick, so the lazy ranking is
    # not asked for a zone past the last one wanted
    for dist, zone_id in world.nearby.ranked(lat, lon, KEY_ZONE, stage.max_distance_m):
        if zone_id in called_before or zone_id in unavailable:
            continue
        held = commitments.get(zone_id)
        if held is not None and held.incident_id != incident.id:
            if held.priority not in response.preempt:
                draft.reasons.append(R.zone_skipped_busy(zone_id, held.incident_id))
                continue
            draft.reasons.append(R.zone_preempted(zone_id, held.incident_id, held.priority))
            draft.preempted.append(held.incident_id)
        # the ranked kind is KEY_ZONE: every id here is a key zone's
        why = R.zone_chosen(zone_id, names[zone_id], dist, 1 if called_before else 0)
        if not ctx.add(zone_id, KEY_ZONE, why, dist):
            continue  # nobody reachable in this team: try the next zone
        draft.zones.append(_new(Pick, (zone_id, dist)))
        draft.reasons.append(why)
        chosen = _linked_units(ctx, zone_id, stage.linked_units, lat, lon)
        draft.units.extend(chosen)
        n, per_zone = len(chosen), stage.linked_units
        text = _text_cache.get((R.units, n, per_zone, zone_id))  # _cached, written out
        if text is None:
            text = _cached(R.units, n, per_zone, zone_id)
        draft.reasons.append(text)
        if len(draft.zones) == wanted:
            break
    if len(draft.zones) < wanted and not draft.zones:
        draft.reasons.append(R.no_zone(stage.max_distance_m))
        draft.command_centre_why.append(
            (f"{stage.max_distance_m:.0f}米内无可用先莞队", "no key zone team in range")
        )


def _linked_units(
    ctx: _Ctx,
    group_id: str,
    n: int,
    lat: float,
    lon: float,
) -> list[Pick]:
    """The ``n`` nearest reachable linked units of a zone or watch group, by (distance,
    id). Only the group's callable units are measured (see :func:`_callable_units`:
    the others would be skipped whatever their distance). Distances are
    :func:`~engine.rules.nearby.haversine_pre_m` written out inline (the same
    operations in the same order, so bit for bit the same value), which saves a
    function call per unit."""
    chosen: list[Pick] = []
    if n == 0:
        return chosen
    phi, lam = math.radians(lat), math.radians(lon)
    cos_phi = math.cos(phi)
    ranked = []
    for uid, u_phi, u_lam, u_cos, name, contacts in _callable_units(ctx, group_id):
        sin_dphi = sin((u_phi - phi) * 0.5)
        sin_dlam = sin((u_lam - lam) * 0.5)
        a = sin_dphi * sin_dphi + cos_phi * u_cos * sin_dlam * sin_dlam
        ranked.append((_TWO_R * asin(sqrt(a if a < 1.0 else 1.0)), uid, name, contacts))
    # by (distance, id): the rows come in id order and the sort is stable, so sorting
    # on the distance alone (a float compare, no tuple compare) breaks ties by id
    ranked.sort(key=_FIRST)
    why = ctx.world.linked_why[group_id]
    seen = ctx.seen
    added: list[Called] = []
    for d, uid, name, contacts in ranked:  # ctx.add(uid, UNIT, why, d, group_id), written out
        if uid in seen:
            continue
        if name is None:
            raise KeyError(uid)
        seen.add(uid)
        added.append(_new(Called, (uid, UNIT, why, d, name, contacts, group_id, None)))
        chosen.append(_new(Pick, (uid, d)))
        if len(chosen) == n:
            break
    if added:
        bucket = ctx.by_kind.get(UNIT)
        if bucket is None:
            ctx.by_kind[UNIT] = added
        else:
            bucket += added
            ctx.units_mixed = True
    return chosen


_UnitRow = tuple[str, float, float, float, str | None, tuple[str, ...]]
"""A callable linked unit: id, lat and lon in radians, cos(lat), name, reachable
addresses."""
_callable_cache: dict[tuple[int, int, int], tuple[object, ...]] = {}
"""(world, unavailable, offline) by id -> (those three, group id -> its callable units,
entity id -> what :func:`_callable_entity` says). The values hold their keys' objects,
so an id is never reused while its entry lives."""


def _callable(
    ctx: _Ctx,
) -> tuple[
    dict[str, tuple[_UnitRow, ...]],
    dict[str, tuple[str | None, tuple[str, ...]] | None],
]:
    """The caches of who is callable under ``ctx``'s world, unavailable and offline
    sets, which the worker hands over unchanged from decision to decision."""
    world, availability = ctx.world, ctx.availability
    unavailable, offline = availability.unavailable, availability.offline_radios
    key = (id(world), id(unavailable), id(offline))
    entry = _callable_cache.get(key)
    if (
        entry is None
        or entry[0] is not world
        or entry[1] is not unavailable
        or entry[2] is not offline
    ):
        if len(_callable_cache) >= 8:
            _callable_cache.clear()
        entry = _callable_cache[key] = (world, unavailable, offline, {}, {})
    return entry[3], entry[4]  # type: ignore[return-value]


def _callable_entity(ctx: _Ctx, entity_id: str) -> tuple[str | None, tuple[str, ...]] | None:
    """(name, reachable addresses) as ``ctx.add`` would find them, or None when it
    would refuse the entity whatever was seen before (nobody to call or reach)."""
    info = ctx.callee.get(entity_id)
    if info is None:
        return None
    name, contacts, people = info
    if not people.isdisjoint(ctx.blocked):
        contacts = _reachable_addresses(ctx.world, ctx.availability, entity_id)
    if not contacts:
        return None
    return name, contacts


def _callable_units(ctx: _Ctx, group_id: str) -> tuple[_UnitRow, ...]:
    """The linked units of ``group_id`` that ``ctx.add`` could add when not yet seen:
    not unavailable, with someone reachable (:func:`_callable_entity`), in the group's
    order. They depend only on the world and the unavailable and offline sets, so they
    are worked out once per group for each such triple."""
    by_group = _callable(ctx)[0]
    rows = by_group.get(group_id)
    if rows is None:
        unavailable = ctx.availability.unavailable
        found: list[_UnitRow] = []
        for uid, u_phi, u_lam, u_cos in ctx.world.linked_positions[group_id]:
            if uid in unavailable:
                continue
            got = _callable_entity(ctx, uid)
            if got is not None:
                found.append((uid, u_phi, u_lam, u_cos, *got))
        found.sort(key=_FIRST)  # by id: see _linked_units
        rows = by_group[group_id] = tuple(found)
    return rows


def _watch_groups(
    world: World,
    availability: Availability,
    stage: Stage,
    lat: float,
    lon: float,
    draft: _Draft,
    ctx: _Ctx,
) -> None:
    taken = 0
    kind = WATCH_GROUP
    # stage.watch_groups >= 1 here: the count is tested after each pick
    for dist, group_id in world.nearby.ranked(lat, lon, kind, stage.max_distance_m):
        if group_id in availability.unavailable or group_id in availability.commitments:
            continue
        why = R.both(f"邻里守望联防组（{dist:.0f}米）", f"neighbourhood watch group ({dist:.0f} m)")
        if ctx.add(group_id, kind, why, dist):
            taken += 1
            _linked_units(ctx, group_id, stage.linked_units, lat, lon)
            if taken == stage.watch_groups:
                break


_FRONTAGE_WHY = R.both("门前三包责任点，警情在其责任范围内", "door-front point covering the scene")


def _frontage(
    world: World, availability: Availability, plan: LoadedPlan, lat: float, lon: float, add: _Add
) -> None:
    kind = FRONTAGE_POINT
    hits = world.nearby.covering(
        lat, lon, kind, world.frontage_radius.__getitem__, world.max_frontage_radius_m
    )
    taken = 0
    cap = plan.plan.frontage_max_points
    unavailable = availability.unavailable
    for dist, point_id in hits:
        if taken == cap:
            break
        if point_id in unavailable:
            continue
        if add(point_id, kind, _FRONTAGE_WHY, dist):
            taken += 1


def _patrol(
    world: World,
    availability: Availability,
    lat: float,
    lon: float,
    local: datetime,
    draft: _Draft,
    add: _Add,
    max_age_s: float = 300.0,
) -> None:
    """The nearest on-duty, available patrol base, by (distance, id): the first
    available answer of the index of bases on duty at this time of day. With patrol
    positions reported, measured from each patrol's fresh fix (see patrol_live)."""
    at = local.time()
    nearby = world.patrol_on_duty[bisect_right(world.patrol_starts, at) - 1]
    if nearby is not None and availability.patrol_fixes:
        for dist, base_id, why in ranked_live(nearby, availability, lat, lon, local, max_age_s):
            if add(base_id, PATROL_BASE, why, dist):
                return
    elif nearby is not None:
        unavailable = availability.unavailable
        first = nearby.first_far(lat, lon, PATROL_BASE)  # the usual answer, found fast
        if first is not None and first[1] not in unavailable:
            dist, base_id = first
            m = f"{dist:.0f}"
            why = f"最近的在岗巡防队（{m}米） | nearest on-duty patrol ({m} m)"  # R.both
            if add(base_id, PATROL_BASE, why, dist):
                return
        # else the walk from the start (refusing the first again: add has no effect
        # when it refuses)
        for dist, base_id in nearby.ranked_far(lat, lon, PATROL_BASE):
            if base_id in unavailable:
                continue
            why = R.both(
                f"最近的在岗巡防队（{dist:.0f}米）", f"nearest on-duty patrol ({dist:.0f} m)"
            )
            if add(base_id, PATROL_BASE, why, dist):
                return
    draft.reasons.append(R.both("当前没有在岗巡防队", "no patrol team on duty now"))


def _schools(
    world: World,
    availability: Availability,
    plan: LoadedPlan,
    stage: Stage,
    lat: float,
    lon: float,
    local: datetime,
    add: _Add,
) -> None:
    assert stage.schools_within_m is not None
    if local.isoweekday() not in plan.plan.school_days:
        return
    at = local.time()
    kind = SCHOOL
    duty = world.school_duty
    for dist, school_id in world.nearby.within(lat, lon, kind, stage.schools_within_m):
        if school_id in availability.unavailable:
            continue
        windows, posts = duty[school_id]
        for window in windows:
            if window.contains(at):
                break
        else:
            continue
        why = R.both(
            f"护学岗在岗（{window}），距离{dist:.0f}米，优先通知",
            f"school-gate duty on ({window}), {dist:.0f} m: told first",
        )
        add(school_id, kind, why, dist, posts=posts)


def _observers(
    world: World,
    availability: Availability,
    plan: LoadedPlan,
    stage: Stage,
    lat: float,
    lon: float,
    now: datetime,
    draft: _Draft,
    ctx: _Ctx,
) -> None:
    """Lookout broadcast to mobile observers within R, from fresh position fixes."""
    assert stage.observers_within_m is not None
    radius = stage.observers_within_m
    oldest = now - timedelta(seconds=plan.plan.observer_max_age_s)
    fixes = availability.observer_fixes
    unavailable = availability.unavailable
    ranked: list[tuple[float, str, str]]
    if isinstance(fixes, ObserverFixes):  # a stale fix is no use: skipped
        ranked = fixes.fresh_within(lat, lon, radius, oldest, unavailable)
    else:  # a plain mapping (offline replay, tests): measure every fix
        phi, lam = math.radians(lat), math.radians(lon)
        cos_phi = math.cos(phi)
        ranked = []
        for oid, f in fixes.items():
            f_phi = math.radians(f.lat)
            d = haversine_pre_m(phi, lam, cos_phi, f_phi, math.radians(f.lon), math.cos(f_phi))
            if d <= radius and oid not in unavailable and f.at >= oldest:
                ranked.append((d, oid, "fix"))
    if plan.plan.observer_home_fallback and not _every_observer_fixed(world, fixes):
        for d, oid in world.nearby.within(lat, lon, OBSERVER, radius, unless=fixes.keys()):
            if oid not in unavailable:
                ranked.append((d, oid, "home"))
    ranked.sort()
    km = radius / 1000
    why_of = {where: _cached(_observer_why, km, where) for where in ("fix", "home")}
    observer_ids = world.observer_ids
    seen = ctx.seen
    reachable = _callable(ctx)[1]
    added: list[Called] = []
    for d, obs_id, where in ranked[: plan.plan.observers_max]:
        if obs_id not in observer_ids:  # a fix for something that is no observer
            observer = world.registry.placed[obs_id]
            assert isinstance(observer, Observer)
        # ctx.add(obs_id, OBSERVER, why_of[where], d), written out
        if obs_id in seen:
            continue
        if obs_id in reachable:  # (no sentinel object: compiled, tuples are values)
            found = reachable[obs_id]
        else:
            found = reachable[obs_id] = _callable_entity(ctx, obs_id)
        if found is None:
            continue
        name, contacts = found
        if name is None:
            raise KeyError(obs_id)
        seen.add(obs_id)
        added.append(_new(Called, (obs_id, OBSERVER, why_of[where], d, name, contacts, None, None)))
    if added:  # the only stage step adding observers: the kind's list is new
        ctx.by_kind[OBSERVER] = added
    sent = min(len(ranked), plan.plan.observers_max)
    draft.reasons.append(_cached(_lookout_sent, sent))


_fixed_cache: list[tuple[World, ObserverFixes, int, bool]] = []
"""(world, fixes, their count, whether every observer of the world has a fix) of the
last check: an ObserverFixes only gains ids (:meth:`ObserverFixes.update` adds or
replaces), so the same object with the same count holds the same ids."""


def _every_observer_fixed(world: World, fixes: Mapping[str, Fix]) -> bool:
    """True when every observer has a fix, so that the home fallback (observers
    without one) has nobody to add; False when that is not known cheaply."""
    if not isinstance(fixes, ObserverFixes):
        return False
    n = len(fixes)
    if _fixed_cache:
        w, f, count, every = _fixed_cache[0]
        if w is world and f is fixes and count == n:
            return every
    every = world.observer_ids <= fixes.keys()
    _fixed_cache[:] = [(world, fixes, n, every)]
    return every


def _command_centre(plan: LoadedPlan, draft: _Draft) -> None:
    cc = plan.plan.command_centre
    why_zh = "；".join(zh for zh, _ in draft.command_centre_why)
    why_en = "; ".join(en for _, en in draft.command_centre_why)
    contacts = [a for a in (cc.radio_id, f"sms:{cc.id}" if cc.sms_number else None) if a]
    draft.recipients.append(
        Called(
            cc.id,
            COMMAND_CENTRE,
            R.command_centre(why_zh, why_en),
            None,
            cc.name_zh,
            tuple(contacts),
        )
    )
    draft.reasons.append(R.command_centre(why_zh, why_en))


def _equipment(
    world: World, items: tuple[Equipment, ...], lat: float, lon: float, reasons: list[str]
) -> list[dict[str, object]]:
    """The nearest point holding each item (like PulsePoint naming the nearest AED):
    the first answer of the item's own ranked index, which lists exactly the points
    with :meth:`EquipmentPoint.has` true in (distance, id) order. Each one's reason
    goes to ``reasons``."""
    out: list[dict[str, object]] = []
    if not items:
        return out
    names = world.names
    for item in items:
        kind = item.value
        nearby = world.equipment.get(kind)
        if nearby is None:
            continue  # no point holds it
        first = nearby.first_far(lat, lon, kind)
        if first is not None:
            point_id = first[1]
            name = names[point_id]
            dist = round(first[0], 1)
            out.append({"item": kind, "id": point_id, "name_zh": name, "distance_m": dist})
            m = f"{dist:.0f}"  # the rounded distance, as the wire shows it
            reasons.append(  # R.both, written out
                f"最近的{kind}器材点 {name}（{m}米） | nearest {kind}: {point_id} ({m} m)"
            )
    return out
