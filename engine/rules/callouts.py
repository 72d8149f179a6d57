"""From a decision to call-outs: one per handset or phone, each with an idempotency key
(incident id / stage / address), so a replayed decision never pages anyone twice with a
new key. A person called for two groups (a zone member who guards a linked unit) gets
one message, for the first group listed; someone paged at an earlier stage is not paged
again on escalation.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING

from engine.models import CallOut, Channel, Incident
from engine.rules.decision import DispatchDecision
from engine.rules.ladder import STEP_CHANNEL, PendingStep, ladder_reason, step_reason
from engine.rules.plan import LoadedPlan
from engine.rules.world import World
from engine.wording import format_callout, incident_code, manual_dispatch_text, stand_down_text

if TYPE_CHECKING:
    from engine.rules.followup import Dispatch

_EQUIPMENT_ZH = {
    "aed": "AED",
    "shield": "盾牌",
    "restraint_fork": "钢叉",
    "baton": "警棍",
    "vest": "背心",
    "shoulder_lamp": "肩灯",
    "whistle": "哨子",
}
_LONG = 10_000  # compose without shortening; the gateway splits long SMS into parts


def paged_before(decisions: Iterable[object]) -> frozenset[str]:
    """Addresses paged by earlier stages (wire or rules decisions)."""
    out: set[str] = set()
    for d in decisions:
        for r in getattr(d, "recipients", ()):
            out.update(getattr(r, "contacts", ()) or ())
    return frozenset(out)


def callouts_for(
    decision: DispatchDecision,
    incident: Incident,
    world: World,
    plan: LoadedPlan,
    already_paged: frozenset[str] = frozenset(),
) -> list[CallOut]:
    """The call-outs to send now for a decision (the first step of every ladder)."""
    return plan_calls(decision, incident, world, plan, already_paged)[0]


def plan_calls(
    decision: DispatchDecision,
    incident: Incident,
    world: World,
    plan: LoadedPlan,
    already_paged: frozenset[str] = frozenset(),
    already_sent: frozenset[tuple[str, str]] = frozenset(),
) -> tuple[list[CallOut], list[PendingStep]]:
    """The call-outs to send now, and the ladder steps to take later unless the contact
    is reached first (see :mod:`engine.rules.ladder`). ``already_paged``: addresses
    paged for this incident before (never paged again by a new stage);
    ``already_sent``: (address, channel) pairs used before."""
    code = incident_code(incident.id)
    equipment = _equipment_hint(decision)
    ladders = plan.plan.ladders
    out: list[CallOut] = []
    later: list[PendingStep] = []
    done = set(already_paged)
    used = set(already_sent)
    for r in decision.recipients:
        text = None  # the recipient's text, made for its first address to page
        group_called = False
        for address in r.contacts:
            if address in done:
                continue
            done.add(address)
            number = _number(address, world, plan)
            if number is None:
                continue  # e.g. a command centre configured with a radio only
            if text is None:
                texts = format_callout(
                    priority=incident.priority,
                    incident_type=incident.type,
                    code=code,
                    address=incident.address,
                    distance_m=r.distance_m,
                    extra=equipment,
                )
                text = (
                    texts[0]
                    if len(texts) == 1
                    else _full_text(incident, code, r.distance_m, equipment)
                )
            ladder = ladders.get(r.kind) if address in world.registry.radios else None
            sms = _callout(incident, decision.stage, address, Channel.SMS, text, number, r)
            if not ladder:
                out.append(sms)
                used.add((address, Channel.SMS.value))
                continue
            steps = [s for s in ladder if not (s.channel == "poc_group" and group_called)]
            group_called = group_called or any(s.channel == "poc_group" for s in steps)
            n = len(steps)
            record = sms.model_copy(update={"record": True, "reason": _RECORD_WHY})
            out.append(record)  # the written text, with the reply code
            used.add((address, Channel.SMS.value))
            for i, step in enumerate(steps):
                if step.channel == "sms":
                    continue  # that is the record, sent already
                target = _step_address(address, step.channel, world)
                pending = PendingStep(
                    contact=address,
                    address=target,
                    channel=step.channel,
                    step=i,
                    steps=n,
                    after_s=step.after_s,
                    due=decision.decided_at + timedelta(seconds=step.after_s),
                    stage=decision.stage,
                    entity=r.id,
                    kind=r.kind,
                    text=text,
                    to=_number(target, world, plan),
                )
                if step.after_s > 0:
                    later.append(pending)
                    continue
                call = step_callout(incident, pending, done, used)
                if call is not None:
                    out.append(call)
    return out, later


_RECORD_WHY = "书面记录（含回复代码）| the written record, with the reply code"


def _step_address(radio_id: str, channel: str, world: World) -> str:
    if channel != "sms_phone":
        return radio_id
    holder = world.registry.radios[radio_id].holder
    return f"sms:{holder}"


def step_callout(
    incident: Incident, step: PendingStep, paged: set[str], used: set[tuple[str, str]]
) -> CallOut | None:
    """The call-out of one ladder step, or None when its address was already paged on
    that channel (or, for a phone, at all) for this incident. Updates ``paged`` and
    ``used``."""
    channel = STEP_CHANNEL[step.channel]
    if (step.address, channel.value) in used or step.to is None:
        return None
    if step.channel == "sms_phone" and step.address in paged:
        return None
    used.add((step.address, channel.value))
    paged.add(step.address)
    key = CallOut.key_for(incident.id, step.stage, step.address)
    if channel is not Channel.SMS:
        key = f"{key}/{step.channel}"
    return CallOut.model_validate(
        {
            "idempotency_key": key,
            "incident_id": incident.id,
            "stage": step.stage,
            "radio_id": step.address,
            "channel": channel,
            "text": step.text,
            "priority": incident.priority,
            "to": step.to,
            "group": step.entity,
            "kind": step.kind,
            "ladder_step": step.step,
            "reason": step_reason(step.step, step.steps, step.channel, step.after_s),
        }
    )


def _callout(
    incident: Incident,
    stage: int,
    address: str,
    channel: Channel,
    text: str,
    number: str,
    r: object,
) -> CallOut:
    return CallOut(
        idempotency_key=CallOut.key_for(incident.id, stage, address),
        incident_id=incident.id,
        stage=stage,
        radio_id=address,
        channel=channel,
        text=text,
        priority=incident.priority,
        to=number,
        group=getattr(r, "id", None),
        kind=getattr(r, "kind", None),
    )


def channel_reasons(decision: DispatchDecision, world: World, plan: LoadedPlan) -> DispatchDecision:
    """The decision with one reason per recipient kind it reaches over a ladder (a kind
    with at least one contact holding a PoC handset)."""
    ladders = plan.plan.ladders
    radios = world.registry.radios
    kinds = [
        k
        for k in dict.fromkeys(
            r.kind for r in decision.recipients if any(a in radios for a in r.contacts)
        )
        if k in ladders
    ]
    if not kinds:
        return decision
    extra = tuple(
        ladder_reason(k, tuple((s.channel, s.after_s) for s in ladders[k])) for k in kinds
    )
    return decision._replace(reasons=(*decision.reasons, *extra))


def _full_text(incident: Incident, code: str, d: float | None, extra: str | None) -> str:
    [text] = format_callout(
        priority=incident.priority,
        incident_type=incident.type,
        code=code,
        address=incident.address,
        distance_m=d,
        extra=extra,
        limit=_LONG,
    )
    return text


def _equipment_hint(decision: DispatchDecision) -> str | None:
    if not decision.equipment:
        return None
    first = decision.equipment[0]
    return f"{_EQUIPMENT_ZH.get(str(first['item']), str(first['item']))}@{first['name_zh']}"


def _number(address: str, world: World, plan: LoadedPlan) -> str | None:
    cc = plan.plan.command_centre
    if address == f"sms:{cc.id}":
        return cc.sms_number
    return world.sms_numbers.get(address)


def stand_down(
    dispatch: Dispatch, world: World, plan: LoadedPlan, *, cancelled: bool
) -> list[CallOut]:
    """A last message to everyone paged for an incident that was cancelled or closed."""
    incident = dispatch.incident
    code = incident_code(incident.id)
    text = stand_down_text(code, cancelled=cancelled)
    return [
        CallOut(
            idempotency_key=f"{incident.id}/end/{address}",
            incident_id=incident.id,
            stage=dispatch.stage,
            radio_id=address,
            channel=Channel.SMS,
            text=text,
            priority=incident.priority,
            to=_number(address, world, plan),
            stand_down=True,
        )
        for address in sorted(dispatch.paged())
    ]


def manual_dispatch(incident: Incident, plan: LoadedPlan) -> list[CallOut]:
    """The engine could not decide this incident (a fault of its own): the command
    centre is told to dispatch it by hand, on its desk handset and its phone."""
    cc = plan.plan.command_centre
    code = incident_code(incident.id)
    where = incident.address or f"{incident.location.lat:.5f},{incident.location.lon:.5f}"
    text = manual_dispatch_text(incident.priority, code, incident.type, where)
    addresses = [a for a in (cc.radio_id, f"sms:{cc.id}" if cc.sms_number else None) if a]
    return [
        CallOut(
            idempotency_key=f"{incident.id}/manual/{address}",
            incident_id=incident.id,
            stage=0,
            radio_id=address,
            channel=Channel.SMS,
            text=text,
            priority=incident.priority,
            to=cc.sms_number if address == f"sms:{cc.id}" else None,
            group=cc.id,
            kind="command_centre",
            manual_dispatch=True,
        )
        for address in addresses
    ]
