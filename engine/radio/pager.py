"""Sends one call-out over the modem link, retrying what the link can recover from.

A port that vanished (CommandAborted) or a modem that stopped answering (CommandTimeout)
is a link problem: the call-out waits and is tried again, for as long as it takes,
because nothing else could be sent meanwhile either. A modem that refuses the message
(``+CMS ERROR``) is tried a few times, then given up as :class:`PageRefused`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from engine.models import CallOut, Channel
from engine.radio import ucs2
from engine.radio.directory import (
    RadioDirectory,
    group_number,
    mask_number,
    normalise_number,
)
from engine.radio.errors import CommandAborted, CommandError, CommandTimeout, RadioError
from engine.radio.metrics import GatewayMetrics
from engine.radio.poc import PocDialect
from engine.radio.ptt import PocPtt
from engine.radio.sms import SINGLE_SMS_UNITS, split_text
from engine.radio.transport import ModemLink
from engine.radio.voice import Voice
from engine.wording import spoken_text

log = logging.getLogger(__name__)

REFUSALS_BEFORE_GIVING_UP = 3


class PageRefused(RadioError):
    """The call-out cannot be sent: unknown radio, no PoC, or the modem keeps refusing.

    ``reason`` is bounded (a metric label and the dead letter's reason)."""

    def __init__(self, message: str, reason: str = "refused") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Paged:
    """What the modem accepted: SMS message references (empty for a voice call-out)."""

    refs: tuple[int, ...] = ()
    voice_seconds: float | None = None


class Pager:
    def __init__(
        self,
        link: ModemLink,
        directory: RadioDirectory,
        *,
        dialect: PocDialect | None = None,
        voice: Voice | None = None,
        metrics: GatewayMetrics | None = None,
        retry_initial: float = 0.2,
        retry_max: float = 10.0,
        allow: Iterable[str] = (),
        max_parts: int = 4,
    ) -> None:
        self.link = link
        self.directory = directory
        self.dialect = dialect
        self.voice = voice
        self.metrics = metrics
        self._retry = (retry_initial, retry_max)
        self.allow = frozenset(normalise_number(n) for n in allow)
        self.max_parts = max_parts

    def check(self, callout: CallOut) -> None:
        """Raises :class:`PageRefused` for a call-out that must not be paged at all:
        an address outside the directory whose number is not on the allow-list, or a
        text longer than ``max_parts`` SMS. Nothing is sent; no retry can change it."""
        if callout.channel is Channel.SMS:
            too_many = ucs2.units(callout.text) > self.max_parts * SINGLE_SMS_UNITS
            parts = self.max_parts + 1 if too_many else len(split_text(callout.text))
            if parts > self.max_parts:
                raise PageRefused(
                    f"text needs {'more than ' if too_many else ''}{parts - too_many} SMS "
                    f"parts, the cap is {self.max_parts}",
                    "too_long",
                )
        if self.directory.entry(callout.radio_id) is not None:
            return
        to = getattr(callout, "to", None)
        if callout.channel is not Channel.SMS or not isinstance(to, str) or not to:
            raise PageRefused(f"radio {callout.radio_id!r} is not in the directory", "unknown")
        if normalise_number(to) not in self.allow:
            raise PageRefused(
                f"{callout.radio_id!r} is not in the directory and its number "
                f"{mask_number(to)} is not on the allow-list",
                "not_allowed",
            )

    async def page(self, callout: CallOut) -> Paged:
        self.check(callout)
        delay = self._retry[0]
        refusals = 0
        while True:
            try:
                return await self._send(callout)
            except CommandAborted as exc:
                self._count("aborted")
                log.warning("call-out %s cut short (%s); resending", callout.idempotency_key, exc)
                await self.link.wait_connected()
            except CommandTimeout as exc:
                self._count("timeout")
                log.warning("call-out %s: %s; retry in %.1fs", callout.idempotency_key, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry[1])
            except CommandError as exc:
                self._count("refused")
                refusals += 1
                if refusals >= REFUSALS_BEFORE_GIVING_UP:
                    raise PageRefused(f"modem refused {refusals} times: {exc}") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry[1])

    def _count(self, kind: str) -> None:
        if self.metrics is not None:
            self.metrics.serial_errors.labels(kind).inc()

    async def _send(self, callout: CallOut) -> Paged:
        entry = self.directory.entry(callout.radio_id)
        if entry is None:
            # an address the registry does not list (the command centre's desk phone),
            # allow-listed (checked above): the worker put the number on the call-out
            number = str(getattr(callout, "to", ""))
            return Paged(tuple(await self.link.send_sms(number, callout.text)))
        if callout.channel is Channel.SMS:
            return Paged(tuple(await self.link.send_sms(entry.sms_number, callout.text)))
        dialect, voice = self.dialect, self.voice
        if dialect is None or voice is None:
            raise PageRefused(
                f"{callout.channel.value} call-out but no PoC dialect and voice", "no_poc"
            )
        if callout.channel is Channel.POC_SINGLE:
            if entry.poc_id is None:
                raise PageRefused(f"radio {entry.radio_id} has no numeric PoC id")
            await self.link.execute(dialect.single_call(entry.poc_id))
        else:
            group = group_number(entry)
            if group is None:
                raise PageRefused(
                    f"radio {entry.radio_id} has no vendor talk-group id (registry talk_group_id)"
                )
            await self.link.execute(dialect.join_group(group))
        seconds = await voice.say(PocPtt(self.link, dialect), spoken_text(callout.text))
        return Paged(voice_seconds=seconds)
