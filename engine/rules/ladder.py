"""Channel ladders: how each contact of a call-out is reached, step by step.

A contact holding a PoC handset is called by voice first (its zone team's talk group,
or the handset alone), with the same text by SMS to the handset as the record (the SMS
carries the reply code). The plan's ladder for the recipient's kind then says what
follows when nothing was delivered to, nor heard from, that contact: e.g. a single
call after 20 s, an SMS to the holder's own phone after 40 s. Each step is a call-out
with its own idempotency key and reason. People without a handset get one SMS.

Pending steps live in the incident's record (:class:`PendingStep` in
``Dispatch.ladder``), so a worker restart resumes the ladder where it was. Rules:

- a delivery report or any reply from any address of the contact (its handset or the
  holder's phone) cancels the contact's remaining steps;
- the ladder runs while the stage awaits its quorum; a quorum met, an unanswered or
  ended incident drops what is left;
- no address is paged twice on one channel for one incident: a step whose address and
  channel were already used (the holder's phone paged for another group) is skipped.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from engine.models import Channel

STEP_CHANNEL: dict[str, Channel] = {
    "poc_group": Channel.POC_GROUP,
    "poc_single": Channel.POC_SINGLE,
    "sms": Channel.SMS,
    "sms_phone": Channel.SMS,
}

CHANNEL_ZH = {
    "poc_group": ("PoC组呼", "PoC group call"),
    "poc_single": ("PoC单呼", "PoC single call"),
    "sms": ("对讲机短信", "SMS to the handset"),
    "sms_phone": ("本人手机短信", "SMS to the holder's own phone"),
}

KIND_ZH = {
    "key_zone": "先莞队",
    "unit": "联动单位",
    "school": "护学岗",
    "patrol_base": "巡防队",
    "watch_group": "守望组",
    "frontage_point": "门前三包",
    "observer": "观察哨",
}


class PendingStep(BaseModel):
    """A ladder step not yet taken: at ``due``, page ``address`` over ``channel``
    unless ``contact`` (the handset) has been reached by then."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    contact: str
    """the handset's radio id: what delivery reports and replies name"""
    address: str
    """where this step pages: the radio id, or ``sms:<holder>`` for the holder's phone"""
    channel: str
    """a :class:`~engine.rules.plan.LadderStep` channel"""
    step: int
    steps: int
    after_s: float
    due: datetime
    stage: int
    entity: str
    kind: str
    text: str
    to: str | None


def step_reason(step: int, steps: int, channel: str, after_s: float) -> str:
    zh, en = CHANNEL_ZH[channel]
    if step == 0:
        return f"阶梯第1/{steps}步：{zh} | ladder step 1/{steps}: {en}"
    return (
        f"阶梯第{step + 1}/{steps}步：{after_s:g}秒内未送达也未回复，{zh} | "
        f"ladder step {step + 1}/{steps}: nothing delivered or heard in {after_s:g} s, {en}"
    )


def ladder_reason(kind: str, steps: tuple[tuple[str, float], ...]) -> str:
    zh = " → ".join(
        CHANNEL_ZH[c][0] if t == 0 else f"{t:g}秒未送达 {CHANNEL_ZH[c][0]}" for c, t in steps
    )
    en = ", then ".join(
        CHANNEL_ZH[c][1] if t == 0 else f"{CHANNEL_ZH[c][1]} after {t:g} s without delivery"
        for c, t in steps
    )
    return f"呼叫方式 {KIND_ZH.get(kind, kind)}：{zh} | channels for {kind}: {en}"
