"""The radio gateway service: ``callouts`` in, radio traffic out, ``acks`` back.

One process per serial device. Consumer group ``radio-gateway``, auto-commit off: a
call-out's offset is committed only once the modem accepted it (or it was skipped as a
duplicate or dead-lettered), as the contiguous prefix of finished offsets per partition
(:class:`~engine.radio.gateway_queue.OffsetTracker`), because priority reorders them. If
the gateway dies, uncommitted call-outs are read again; the sent set (a durable local
log plus ``sent`` Acks read back from ``acks``, see :mod:`engine.radio.sent_log`)
keeps those that were paged from being paged again.

Delivery (issue 13): the modem taking a text is ``sent``; the handset's status report
(``+CDS``) makes it ``delivered`` (or ``failed``); a PoC single call's result likewise.
Replies are stored on the module (``+CMTI``), read with ``AT+CMGR`` and deleted with
``AT+CMGD`` only after Kafka acknowledged their Ack; on start the gateway lists what the
module kept (``AT+CMGL``) and skips replies whose Ack is already on ``acks`` (their
``reply_id``), so a crash between the two loses none and doubles none. The module's
presence reports put each handset online or offline on ``unit-status``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError, KafkaTimeoutError
from pydantic import ValidationError

from engine import clock as engine_clock
from engine.config import Settings
from engine.kafka.connection import client_kwargs, producer_kwargs
from engine.models import Ack, AckKind, CallOut, Channel, DeadLetter, UnitStatus
from engine.radio import at_events as ev
from engine.radio import poc, sms
from engine.radio.directory import RadioDirectory, mask_number
from engine.radio.errors import MessageFormatError, RadioError
from engine.radio.gateway_history import read_history
from engine.radio.gateway_queue import OffsetTracker, Pending
from engine.radio.metrics import GatewayMetrics
from engine.radio.pager import Paged, Pager, PageRefused
from engine.radio.reply_check import AcceptedReply, RejectedReply, ReplyBook, ReplyRejection
from engine.radio.reply_codes import load_reply_key, reply_code, with_code
from engine.radio.send_loop import SendLoop
from engine.radio.sent_log import KEEP_FOR, SentEntry, SentLog
from engine.radio.transport import ModemLink
from engine.radio.voice import Voice

log = logging.getLogger(__name__)

GROUP_ID = "radio-gateway"
SOURCE = "radio-gateway"
_AREAS_KEPT = 10_000
"""Incidents whose area the gateway remembers for reply routing (oldest dropped)."""
PRODUCE_RETRY = 1.0  # seconds between attempts while Kafka is away


class Gateway:
    def __init__(
        self,
        settings: Settings,
        link: ModemLink,
        directory: RadioDirectory,
        sent_log: SentLog,
        *,
        radio_id: str,
        dialect: poc.PocDialect | None = None,
        voice: Voice | None = None,
        metrics: GatewayMetrics | None = None,
        group_id: str = GROUP_ID,
        window: int = 2,
        read_history: bool = True,
        clock: Callable[[], float] = engine_clock.time_s,
        reply_key: bytes | None = None,
    ) -> None:
        self.settings = settings
        self.link = link
        self.directory = directory
        self.sent = sent_log
        self.radio_id = radio_id
        self.dialect = dialect
        self.metrics = metrics or GatewayMetrics()
        self.group_id = group_id
        self.read_history = read_history
        self.clock = clock
        self.reply_key = reply_key if reply_key is not None else load_reply_key(settings)
        self.book = ReplyBook(
            open_for=settings.radio_reply_open_s,
            rate=settings.radio_reply_rate,
            rate_window=settings.radio_reply_rate_window_s,
        )
        self._areas: dict[str, str] = {}
        self._acked: set[str] = set()  # keys whose sent Ack is known to be on `acks`
        self._by_ref: dict[int, CallOut] = {}  # SMS message reference -> its call-out
        self._poc_single: dict[str, CallOut] = {}  # radio id -> its latest single call
        self._replied: set[str] = set()  # reply ids whose Ack is on `acks`
        self._reading: set[int] = set()  # module storage indexes being handled
        self.offsets = OffsetTracker()
        self.pager = Pager(
            link,
            directory,
            dialect=dialect,
            voice=voice,
            metrics=self.metrics,
            allow=settings.radio_allow_numbers,
            max_parts=settings.radio_max_sms_parts,
        )
        self.sender = SendLoop(
            self.pager,
            on_sent=self._on_sent,
            on_failed=self._on_failed,
            on_paged=self._on_paged,
            window=window,
            metrics=self.metrics,
            ttl=settings.radio_callout_ttl_s,
            clock=clock,
        )
        self._topic = settings.topic("callouts")
        self._waiting: dict[str, list[tuple[int, int]]] = {}  # key -> its (partition, offset)s
        self._committed: dict[int, int] = {}
        self._commit_lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None

    # -- running ------------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled. The link is the caller's: started before, closed after."""
        producer = AIOKafkaProducer(**producer_kwargs(self.settings))
        await producer.start()
        self._producer = producer
        try:
            if self.sent.skipped:
                self.metrics.sent_log_bad_lines.inc(self.sent.skipped)
                log.warning("%d unreadable sent-log lines skipped", self.sent.skipped)
            for entry in list(self.sent.entries.values()):
                self._remember(entry)
            if self.read_history:
                entries, replied = await read_history(self.settings, self.clock() - KEEP_FOR)
                for entry in entries:
                    self._acked.add(entry.key)
                    self._remember(entry)
                self._replied |= replied
            consumer = AIOKafkaConsumer(
                **client_kwargs(self.settings),
                group_id=self.group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                # the worker's outputs are transactional: never page an aborted call-out
                isolation_level="read_committed",
            )
            consumer.subscribe([self._topic], listener=_Rebalance(self))
            await consumer.start()
            self._consumer = consumer
            try:
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(self._consume(consumer), name="gateway consume")
                    tasks.create_task(self._send(), name="gateway send")
                    tasks.create_task(self._events(), name="gateway events")
                    tasks.create_task(self._watch_link(), name="gateway link")
            finally:
                self._consumer = None
                with contextlib.suppress(Exception):
                    await consumer.stop()
        finally:
            self._producer = None
            await producer.stop()

    def _remember(self, entry: SentEntry) -> None:
        """A page sent before (this log, or a ``delivered`` Ack): never again, and its
        reply code, area and stand-down still count."""
        self.sent.remember(entry)
        self._remember_area(entry.incident_id, entry.area)
        if entry.stand_down:
            self.book.close(entry.incident_id, entry.at)
        else:
            code = reply_code(self.reply_key, entry.incident_id, entry.stage, entry.radio_id)
            self.book.issued(
                code, entry.incident_id, entry.stage, entry.radio_id, entry.at, entry.to
            )

    # -- callouts in ----------------------------------------------------------------------

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    await self._accept(record.partition, record.offset, record.value, record)

    async def _accept(self, partition: int, offset: int, value: bytes | None, record: Any) -> None:
        self.offsets.track(partition, offset)
        try:
            callout = CallOut.model_validate_json(value or b"")
        except ValidationError as exc:
            log.error("callouts %d@%d: not a CallOut: %s", partition, offset, exc)
            await self._dead_letter(value, record.key, partition, offset, str(exc), "invalid")
            await self._finish(partition, offset)
            return
        key = callout.idempotency_key
        if _is_stand_down(callout):
            # operators ended the incident: its codes take no more replies from now on
            self.book.close(callout.incident_id, self.clock())
        if key in self.sent:
            log.info("call-out %s already paged; not paging again", key)
            self.metrics.callouts_skipped.labels("duplicate").inc()
            if key not in self._acked:
                # paged, but the gateway died before its Ack was known to be published
                await self._publish_report(callout, self.sent.entries[key].at, ())
            await self._finish(partition, offset)
            return
        if key in self._waiting:  # the same key twice in the log: one page for both
            self._waiting[key].append((partition, offset))
            return
        self._waiting[key] = [(partition, offset)]
        if callout.channel is Channel.POC_SINGLE:
            self._poc_single[callout.radio_id] = callout
        if not _is_stand_down(callout):
            code = reply_code(self.reply_key, callout.incident_id, callout.stage, callout.radio_id)
            callout = callout.model_copy(
                update={"text": with_code(callout.text, callout.incident_id, code)}
            )
        self.sender.put(Pending(callout, partition, offset, _decided_at(callout, record)))

    def _revoked(self, partitions: set[int]) -> None:
        for item in self.sender.drop_partitions(partitions):
            self._waiting.pop(item.callout.idempotency_key, None)
        self.offsets.forget(partitions)
        for p in partitions:
            self._committed.pop(p, None)

    # -- after the modem -----------------------------------------------------------------

    def _on_paged(self, item: Pending, paged: Paged) -> None:
        """Runs the instant the modem accepted: durable before anything can interleave."""
        c = item.callout
        now = self.clock()
        area = getattr(c, "area", None)
        to = getattr(c, "to", None) if self.directory.entry(c.radio_id) is None else None
        entry = SentEntry(
            c.idempotency_key,
            c.incident_id,
            c.radio_id,
            now,
            stage=c.stage,
            area=area if isinstance(area, str) else None,
            stand_down=_is_stand_down(c),
            to=to if isinstance(to, str) else None,
        )
        self.sent.add(entry)
        self._remember(entry)
        self.metrics.callouts_sent.labels(c.channel.value).inc()
        if item.decided_at is not None:
            self.metrics.decision_to_callout.observe(max(0.0, now - item.decided_at))

    async def _on_sent(self, item: Pending, paged: Paged) -> None:
        c = item.callout
        for ref in paged.refs:  # for its status report
            self._by_ref[ref] = c
            while len(self._by_ref) > _REFS_KEPT:
                self._by_ref.pop(next(iter(self._by_ref)))
        await self._publish_report(c, self.clock(), paged.refs)
        await self._finish_key(c.idempotency_key)

    async def _publish_report(
        self, c: CallOut, at: float, refs: tuple[int, ...], kind: AckKind = AckKind.SENT
    ) -> None:
        ack = Ack.model_validate(
            {
                "incident_id": c.incident_id,
                "radio_id": c.radio_id,
                "kind": kind,
                "at": datetime.fromtimestamp(at, UTC),
                "idempotency_key": c.idempotency_key,
                "area": getattr(c, "area", None),
                "stage": c.stage,
                "channel": c.channel.value,
                "message_refs": list(refs),
                "stand_down": _is_stand_down(c) or None,
                "source": SOURCE,
            }
        )
        await self._produce("acks", c.incident_id, ack.to_json_bytes())
        if kind is AckKind.SENT:
            self._acked.add(c.idempotency_key)

    async def _on_failed(self, item: Pending, error: RadioError) -> None:
        c = item.callout
        reason = error.reason if isinstance(error, PageRefused) else "refused"
        self.metrics.callouts_skipped.labels(reason).inc()
        if reason == "no_poc":
            # a gateway without PoC (SMS only): the voice step failed, the record SMS and
            # the ladder's later steps still reach the person; nothing to dead-letter
            await self._publish_report(c, self.clock(), (), AckKind.FAILED)
            await self._finish_key(c.idempotency_key)
            return
        letter_reason = reason if reason in _DEAD_LETTER_REASONS else "other"
        await self._dead_letter(
            c.to_json_bytes(), c.radio_id.encode(), item.partition, item.offset, str(error),
            letter_reason,
        )  # fmt: skip
        await self._finish_key(c.idempotency_key)

    async def _finish_key(self, key: str) -> None:
        for partition, offset in self._waiting.pop(key, []):
            await self._finish(partition, offset)

    async def _finish(self, partition: int, offset: int) -> None:
        if self.offsets.finish(partition, offset) is None:
            return
        async with self._commit_lock:
            # The tracker may have moved further while we waited for the lock.
            position = self.offsets.committed(partition)
            consumer = self._consumer
            if position is None or consumer is None:
                return
            if position <= self._committed.get(partition, -1):
                return
            try:
                await consumer.commit({TopicPartition(self._topic, partition): position})
            except KafkaError as exc:  # rebalanced away: the new owner starts from the last
                log.warning("commit of %s[%d]@%d failed: %s", self._topic, partition, position, exc)
                return
            self._committed[partition] = position

    # -- replies and health in ---------------------------------------------------------------

    async def _events(self) -> None:
        while True:
            event = await self.link.events.get()
            if isinstance(event, ev.Urc):
                if event.name == "+CMT":
                    await self._on_sms(event)
                elif event.name == "+CMTI":
                    await self._on_stored_notice(event)
                elif event.name == "+CDS":
                    await self._on_status_report(event)
                elif self.dialect is not None and event.line.startswith(self.dialect.report_prefix):
                    await self._on_poc(self.dialect.parse_report(event.line))
            elif isinstance(event, ev.LinkDown):
                self.metrics.link_up.set(0)
                await self._status(False, "modem stopped answering (command timeouts)")
            elif isinstance(event, ev.LinkUp):
                self.metrics.link_up.set(1)
                await self._status(True, "modem answering again")
            elif isinstance(event, ev.ModemRestarted):
                self.metrics.modem_restarts.inc()

    async def _on_sms(self, urc: ev.Urc) -> None:
        try:
            incoming = sms.parse_incoming(urc)
        except MessageFormatError as exc:
            await self._reject(RejectedReply(ReplyRejection.MALFORMED, "?", urc.line), str(exc))
            return
        await self._reply(incoming.sender, incoming.text, incoming.sent_at, None)

    async def _reply(
        self, sender: str, text: str, sent_at: datetime | None, reply_id: str | None
    ) -> None:
        """A handset's reply: checked, then published as an Ack (returns once Kafka has
        it), or rejected."""
        result = self.book.check(sender, text, self.directory, self.clock())
        if not isinstance(result, AcceptedReply):
            await self._reject(result, "")
            return
        ack = Ack.model_validate(
            {
                "incident_id": result.incident_id,
                "radio_id": result.radio_id,
                "kind": result.kind,
                "at": datetime.fromtimestamp(self.clock(), UTC),
                "channel": "sms",
                "area": self._areas.get(result.incident_id),
                "stage": result.stage,
                "note": result.note or None,
                "sent_at": sent_at.isoformat() if sent_at else None,
                "reply_id": reply_id,
                "source": SOURCE,
            }
        )
        await self._produce("acks", result.incident_id, ack.to_json_bytes())
        self.metrics.replies.labels(result.kind.value).inc()

    # -- replies kept on the module (AT+CNMI=2,1) ------------------------------------------

    async def _on_stored_notice(self, urc: ev.Urc) -> None:
        """``+CMTI: "SM",<index>``: a reply waits in the module's storage."""
        try:
            index = int(urc.line.rsplit(",", 1)[1])
        except (IndexError, ValueError):
            log.warning("unreadable +CMTI: %r", urc.line)
            return
        await self._take_stored(index)

    async def _take_stored(self, index: int, stored: sms.StoredSms | None = None) -> None:
        """Read the message at ``index`` (unless listed already), publish its Ack, and
        only then delete it from the module."""
        if index in self._reading:
            return
        self._reading.add(index)
        try:
            if stored is None:
                done = await self.link.execute(sms.read_command(index))
                stored = sms.parse_read(index, done.lines)
            reply_id = _reply_id(stored)
            if reply_id in self._replied:
                log.info("stored reply %d was published before the last stop", index)
            else:
                await self._reply(stored.sender, stored.text, stored.sent_at, reply_id)
                self._replied.add(reply_id)
            await self.link.execute(sms.delete_command(index))
        except MessageFormatError as exc:
            await self._reject(RejectedReply(ReplyRejection.MALFORMED, "?", ""), str(exc))
            with contextlib.suppress(RadioError):
                await self.link.execute(sms.delete_command(index))
        except RadioError as exc:  # the link dropped: left stored, listed at next start
            log.warning("stored reply %d not taken now: %s", index, exc)
        finally:
            self._reading.discard(index)

    async def _take_all_stored(self) -> None:
        """Replies kept while no gateway was reading (stopped, crashed, unplugged)."""
        try:
            done = await self.link.execute(sms.list_command())
        except RadioError as exc:
            log.warning("listing stored replies failed: %s", exc)
            return
        found = sms.parse_list(done.lines)
        if found:
            log.info("%d replies were waiting on the module", len(found))
        for stored in found:
            await self._take_stored(stored.index, stored)

    async def _on_status_report(self, urc: ev.Urc) -> None:
        """``+CDS``: the network says whether the handset got a text."""
        try:
            report = sms.parse_status_report(urc)
        except MessageFormatError as exc:
            log.warning("unreadable +CDS: %s", exc)
            return
        callout = self._by_ref.get(report.reference)
        if callout is None or 0x20 <= report.status < 0x40:  # unknown, or still trying
            return
        kind = AckKind.DELIVERED if report.delivered else AckKind.FAILED
        self.metrics.delivery_reports.labels(kind.value).inc()
        await self._publish_report(callout, self.clock(), (report.reference,), kind)

    def _remember_area(self, incident_id: str, area: object) -> None:
        """The dispatch area of a paged incident, copied onto its acks so the worker
        can route them to the area's owner (acks are keyed by incident id)."""
        if not isinstance(area, str):
            return
        self._areas[incident_id] = area
        while len(self._areas) > _AREAS_KEPT:
            self._areas.pop(next(iter(self._areas)))

    async def _reject(self, rejected: RejectedReply, detail: str) -> None:
        """Counted, logged (number masked) and written to the audit topic; never acked."""
        reason = rejected.reason.value
        self.metrics.replies_rejected.labels(reason).inc()
        sender = rejected.sender
        log.warning(
            "reply rejected (%s) from %s: %r %s", reason, mask_number(sender), rejected.text[:80],
            detail,
        )  # fmt: skip
        record = {
            "schema_version": 1,
            "kind": "reply_rejected",
            "reason": reason,
            "sender": sender,
            "text": rejected.text[:500],
            "incident_id": rejected.incident_id,
            "radio_id": rejected.radio_id,
            "area": self._areas.get(rejected.incident_id or ""),
            "detail": detail[:500] or None,
            "gateway": self.radio_id,
            "at": datetime.fromtimestamp(self.clock(), UTC).isoformat(),
            "source": SOURCE,
        }
        value = json.dumps(record, ensure_ascii=False).encode("utf-8")
        await self._produce("audit", rejected.radio_id or sender, value)

    async def _on_poc(self, report: poc.PocEvent | None) -> None:
        if isinstance(report, poc.NetworkDown):
            self.metrics.poc_network_up.set(0)
            await self._status(False, "PoC network down")
        elif isinstance(report, poc.NetworkUp):
            self.metrics.poc_network_up.set(1)
            await self._status(True, "PoC network up")
        elif isinstance(report, poc.LoggedIn):
            self.metrics.poc_network_up.set(1)
        elif isinstance(report, poc.HandsetPresence):
            radio = self._radio_of_poc(report.user_id)
            if radio is not None:
                why = "PoC handset online" if report.online else "PoC handset offline"
                await self._status(report.online, why, radio)
        elif isinstance(report, poc.HandsetPosition):
            radio = self._radio_of_poc(report.user_id)
            if radio is not None:
                status = UnitStatus.model_validate(
                    {
                        "unit_id": radio,
                        "location": {"lat": report.lat, "lon": report.lon},
                        "reason": "PoC handset position",
                        "source": SOURCE,
                    }
                )
                await self._produce("unit-status", radio, status.to_json_bytes())
        elif isinstance(report, poc.CallResult):
            radio = self._radio_of_poc(report.user_id)
            callout = self._poc_single.get(radio or "")
            if callout is not None:
                kind = AckKind.DELIVERED if report.reached else AckKind.FAILED
                self.metrics.delivery_reports.labels(kind.value).inc()
                await self._publish_report(callout, self.clock(), (), kind)

    def _radio_of_poc(self, user_id: int) -> str | None:
        find = getattr(self.directory, "radio_of_poc", None)
        return find(user_id) if find is not None else None

    async def _status(self, online: bool, reason: str, radio_id: str | None = None) -> None:
        unit = radio_id or self.radio_id
        status = UnitStatus(unit_id=unit, radio_online=online, reason=reason, source=SOURCE)
        await self._produce("unit-status", unit, status.to_json_bytes())

    async def _watch_link(self) -> None:
        seen = 0
        while True:
            await self.link.wait_connected()
            if seen and self.link.connects > seen:
                self.metrics.reconnects.inc(self.link.connects - seen)
            seen = self.link.connects
            self.metrics.link_up.set(1)
            await self.link.wait_disconnected()
            self.metrics.link_up.set(0)

    async def _send(self) -> None:
        if self.dialect is not None:
            await self._poc_login(self.dialect)  # before any PoC call-out needs it
        await self._take_all_stored()
        await self.sender.run()

    async def _poc_login(self, dialect: poc.PocDialect) -> None:
        for command in (dialect.open(), dialect.login()):
            try:
                await self.link.execute(command)
            except RadioError as exc:
                log.error("PoC %s failed: %s (voice call-outs will fail)", command.label, exc)
                return

    # -- Kafka out ------------------------------------------------------------------------

    async def _produce(self, logical: str, key: str, value: bytes) -> None:
        """Until Kafka takes it: an ack or status is never dropped for a broker hiccup.

        Only retriable errors are retried; anything else (not authorised, record too
        large, unknown topic) raises :class:`KafkaRefused` at once: retrying cannot help."""
        producer = self._producer
        assert producer is not None
        topic = self.settings.topic(logical)
        while True:
            try:
                await producer.send_and_wait(topic, value, key=key.encode("utf-8"))
                return
            except KafkaError as exc:
                if not retriable(exc):
                    raise KafkaRefused(f"producing to {topic} refused: {exc!r}") from exc
                log.warning("producing to %s failed: %s; retrying", topic, exc)
                await asyncio.sleep(PRODUCE_RETRY)

    async def _dead_letter(
        self,
        value: bytes | None,
        key: bytes | None,
        partition: int,
        offset: int,
        error: str,
        reason: str,
    ) -> None:
        letter = DeadLetter.for_bytes(
            value, topic=self._topic, error=error, partition=partition, offset=offset,
            reason=reason,
            original_key_b64=None if key is None else base64.b64encode(key).decode("ascii"),
        )  # fmt: skip
        dead_key = key.decode("utf-8", "replace") if key else "callouts"
        await self._produce("deadletter", dead_key, letter.to_json_bytes())


class KafkaRefused(RadioError):
    """Kafka refused a record for a reason no retry can fix (e.g. a missing ACL)."""


def retriable(exc: KafkaError) -> bool:
    """Worth another try: the broker is away or busy, not saying no. aiokafka marks a
    delivery timeout (broker unreachable for ``request_timeout_ms``) as not retriable,
    but for a gateway that must not drop an ack it is just a longer hiccup."""
    return bool(getattr(exc, "retriable", False)) or isinstance(exc, KafkaTimeoutError)


_DEAD_LETTER_REASONS = frozenset({"stale", "not_allowed", "too_long"})
_REFS_KEPT = 4096
"""SMS message references remembered for status reports (they wrap at 256 anyway)."""


def _reply_id(stored: sms.StoredSms) -> str:
    """A stored reply's identity: the same message read again (after a crash: the same
    storage slot, sender, time stamp and text) has the same id, so its Ack is published
    once; the same text sent twice is two messages (two slots)."""
    raw = f"{stored.index}\x1f{stored.sender}\x1f{stored.scts}\x1f{stored.text}".encode()
    return hashlib.sha256(raw).hexdigest()[:20]


def _is_stand_down(callout: CallOut) -> bool:
    return (callout.model_extra or {}).get("stand_down") is True


def _decided_at(callout: CallOut, record: Any) -> float | None:
    """The decision time: a ``decided_at`` field if the producer set one, else the
    record's timestamp (the worker produces call-outs as it decides)."""
    extra = (callout.model_extra or {}).get("decided_at")
    if isinstance(extra, str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(extra).timestamp()
    ts = getattr(record, "timestamp", None)
    # Kafka's timestamps are the wall clock; a drill's engine clock may be shifted
    return ts / 1000.0 + engine_clock.OFFSET_S if isinstance(ts, int) and ts > 0 else None


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self._gateway._revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        pass
