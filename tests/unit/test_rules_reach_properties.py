"""Issue 13, property: nobody is called twice for one incident, whatever mix of
declines, accepts, delivery reports, ladder steps, substitutes and escalations follows.
Called twice: the same address paged twice on one channel, one idempotency key used
twice, or one group chosen twice (a substitute or a new stage picking someone already
called)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.models import Ack, CallOut, Incident, Lifecycle
from engine.rules.availability import Availability
from engine.rules.decide import decide
from engine.rules.followup import first_callout, on_reply, on_timeout
from engine.rules.plan import LoadedPlan
from engine.rules.world import World

pytestmark = pytest.mark.unit

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 30, 22, 40, tzinfo=CST)

KINDS = ("accept", "decline", "decline", "decline", "delivered", "sent", "failed", "on_scene")

event = st.one_of(
    st.tuples(st.just("reply"), st.integers(0, 400), st.sampled_from(KINDS)),
    st.tuples(st.just("tick"), st.integers(1, 70), st.just("")),
)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    lat=st.floats(22.76, 22.84),
    lon=st.floats(114.05, 114.14),
    kind=st.sampled_from(("fire", "medical", "fight", "traffic", "other")),
    priority=st.sampled_from(("P1", "P2", "P3")),
    events=st.lists(event, max_size=30),
)
def test_nobody_is_called_twice(
    tangxia_world: World,
    default_plan: LoadedPlan,
    lat: float,
    lon: float,
    kind: str,
    priority: str,
    events: list[tuple[str, int, str]],
) -> None:
    incident = Incident(
        id="INC-20261130-PROP01",
        type=kind,
        priority=priority,
        location={"lat": lat, "lon": lon},
        area="tangxia",
        raised_at=T0,
    )  # type: ignore[arg-type]
    free = Availability()
    decision = decide(incident, tangxia_world, free, default_plan, T0)
    opened = first_callout(incident, decision, tangxia_world, default_plan, T0)
    d = opened.dispatch
    calls: list[CallOut] = list(opened.callouts)
    now = T0
    for what, n, ack_kind in events:
        if d.status in (Lifecycle.CLOSED, Lifecycle.CANCELLED):
            break
        if what == "tick":
            now += timedelta(seconds=n)
            out = on_timeout(d, tangxia_world, free, default_plan, now)
            d = out.dispatch
            calls += out.callouts
            continue
        addresses = sorted({c.radio_id for c in calls})
        ack = Ack(
            incident_id=incident.id,
            radio_id=addresses[n % len(addresses)],
            kind=ack_kind,
            at=now,
        )  # type: ignore[arg-type]
        reply = on_reply(d, ack, tangxia_world, free, default_plan, now)
        d = reply.dispatch
        calls += reply.callouts

    keys = [c.idempotency_key for c in calls]
    assert len(keys) == len(set(keys)), "an idempotency key used twice"
    pairs = [(c.radio_id, c.channel.value) for c in calls]
    assert len(pairs) == len(set(pairs)), "an address paged twice on one channel"
    chosen = [r.id for dec in d.decisions for r in dec.recipients]
    assert len(chosen) == len(set(chosen)), "a group chosen twice"
    # every call-out is accounted for in the incident's record
    assert set(pairs) == set(d.sent)
