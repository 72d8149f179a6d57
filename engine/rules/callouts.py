"""From a decision to call-outs: one per handset or phone, each with an idempotency key
(incident id / stage / address), so a replayed decision never pages anyone twice with a
new key. A person called for two groups (a zone member who guards a linked unit) gets
one message, for the first group listed; someone paged at an earlier stage is not paged
again on escalation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from engine.models import CallOut, Channel, Incident
from engine.rules.decision import DispatchDecision
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
    code = incident_code(incident.id)
    equipment = _equipment_hint(decision)
    out: list[CallOut] = []
    done = set(already_paged)
    for r in decision.recipients:
        text = None  # the recipient's text, made for its first address to page
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
            out.append(
                CallOut(
                    idempotency_key=CallOut.key_for(incident.id, decision.stage, address),
                    incident_id=incident.id,
                    stage=decision.stage,
                    radio_id=address,
                    channel=Channel.SMS,
                    text=text,
                    priority=incident.priority,
                    to=number,
                    group=r.id,
                    kind=r.kind,
                )
            )
    return out


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
        for address in sorted(paged_before(dispatch.decisions))
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
