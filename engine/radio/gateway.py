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
from engine.broadcast.model import PRIORITY_RANK as BROADCAST_RANK
from engine.broadcast.model import Message as BroadcastMessage
from engine.config import Settings
from engine.kafka.connection import client_kwargs, partitions_of, producer_kwargs
from engine.models import Ack, AckKind, CallOut, Channel, DeadLetter, Priority, UnitStatus
from engine.radio import at_events as ev
from engine.radio import poc, sms
from engine.radio.directory import RadioDirectory, mask_number, normalise_number
from engine.radio.errors import MessageFormatError, RadioError
from engine.radio.gateway_history import read_history
from engine.radio.gateway_queue import OffsetTracker, Pending
from engine.radio.metrics import GatewayMetrics
from engine.radio.pager import Paged, Pager, PageRefused
from engine.radio.replies import Rejected, parse_reply
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
            skip=self._skip,
            on_skipped=self._on_skipped,
        )
        self._topic = settings.topic("callouts")
        self._bc_topic = settings.topic("broadcast-messages")
        self.bc_offsets = OffsetTracker()
        self._backlog = settings.radio_broadcast_backlog
        self._bc_paused = False
        self._cancelled: dict[str, float] = {}  # broadcast id -> when its cancel was read
        # number -> (broadcast id, radio id, when texted)
        self._bc_to: dict[str, tuple[str, str, float]] = {}
        self.broadcasts_caught_up = asyncio.Event()
        self._tail: AIOKafkaConsumer | None = None  # follows `broadcasts`
        self._tail_read: dict[TopicPartition, int] = {}  # how far it read
        self._changed = asyncio.Event()  # a message finished, or the follower read more
        # key -> its (topic, partition, offset)s
        self._waiting: dict[str, list[tuple[str, int, int]]] = {}
        self._committed: dict[tuple[str, int], int] = {}
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
            consumer.subscribe([self._topic, self._bc_topic], listener=_Rebalance(self))
            async with asyncio.TaskGroup() as tasks:
                # cancels and other gateways' sent reports are known before any broadcast
                # message is read
                tasks.create_task(self._follow_broadcasts(), name="gateway broadcasts")
                await self.broadcasts_caught_up.wait()
                tasks.create_task(self._run_consumer(consumer), name="gateway consumer")
        finally:
            self._producer = None
            await producer.stop()

    async def _run_consumer(self, consumer: AIOKafkaConsumer) -> None:
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

    def _remember(self, entry: SentEntry) -> None:
        """A page sent before (this log, or a ``delivered`` Ack): never again, and its
        reply code, area and stand-down still count."""
        self.sent.remember(entry)
        if entry.broadcast:
            return  # a broadcast takes no coded replies
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
            batch = await consumer.getmany(timeout_ms=1000, max_records=self._backlog)
            for tp, records in batch.items():
                for record in records:
                    if tp.topic == self._bc_topic:
                        await self._accept_broadcast(record)
                    else:
                        await self._accept(record.partition, record.offset, record.value, record)
            self._throttle(consumer)

    def _throttle(self, consumer: AIOKafkaConsumer) -> None:
        """Bounded memory: broadcast messages are read only while fewer than the backlog
        wait here (call-outs are always read)."""
        waiting = len(self.sender.broadcasts)
        mine = [tp for tp in consumer.assignment() if tp.topic == self._bc_topic]
        if waiting >= self._backlog and not self._bc_paused:
            consumer.pause(*mine)
            self._bc_paused = True
        elif waiting < self._backlog // 2 and self._bc_paused:
            consumer.resume(*mine)
            self._bc_paused = False

    async def _accept(self, partition: int, offset: int, value: bytes | None, record: Any) -> None:
        self.offsets.track(partition, offset)
        try:
            callout = CallOut.model_validate_json(value or b"")
        except ValidationError as exc:
            log.error("callouts %d@%d: not a CallOut: %s", partition, offset, exc)
            await self._dead_letter(value, record.key, partition, offset, str(exc), "invalid")
            await self._finish(partition, offset)
            return
        if _broadcast_id(callout) is not None:  # only broadcast-messages may carry one
            callout = callout.model_copy(update={"broadcast_id": None})
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
            self._waiting[key].append((self._topic, partition, offset))
            return
        self._waiting[key] = [(self._topic, partition, offset)]
        if callout.channel is Channel.POC_SINGLE:
            self._poc_single[callout.radio_id] = callout
        if not _is_stand_down(callout):
            code = reply_code(self.reply_key, callout.incident_id, callout.stage, callout.radio_id)
            callout = callout.model_copy(
                update={"text": with_code(callout.text, callout.incident_id, code)}
            )
        self.sender.put(Pending(callout, partition, offset, _decided_at(callout, record)))

    async def _accept_broadcast(self, record: Any) -> None:
        """A broadcast message: validated, then queued in the lowest lane (or finished at
        once: unreadable, sent before, its broadcast cancelled)."""
        partition, offset, topic = record.partition, record.offset, self._bc_topic
        self.bc_offsets.track(partition, offset)
        try:
            message = BroadcastMessage.model_validate_json(record.value or b"")
        except ValidationError as exc:
            log.error("broadcast-messages %d@%d: not a message: %s", partition, offset, exc)
            await self._dead_letter(
                record.value, record.key, partition, offset, str(exc), "invalid", topic
            )
            await self._finish(partition, offset, topic)
            return
        key = message.idempotency_key
        if key in self._waiting:
            self._waiting[key].append((topic, partition, offset))
            return
        callout = CallOut.model_validate(
            {
                "idempotency_key": key,
                "incident_id": message.broadcast_id,
                "stage": 0,
                "radio_id": message.radio_id,
                "channel": message.channel.value,
                "text": message.text,
                "priority": Priority.P4,
                "broadcast_id": message.broadcast_id,
                "expires_at": message.expires_at.isoformat(),
            }
        )
        self._waiting[key] = [(topic, partition, offset)]
        item = Pending(
            callout, partition, offset, None, broadcast=True,
            rank=BROADCAST_RANK[message.priority],
        )  # fmt: skip
        reason = self._skip(item)
        if reason is not None:
            await self._on_skipped(item, reason)
            return
        self.sender.put(item)

    def _skip(self, item: Pending) -> str | None:
        """Why a broadcast message is not sent (checked again just before it would go)."""
        if not item.broadcast:
            return None
        c = item.callout
        if c.idempotency_key in self.sent:
            return "duplicate"
        if c.incident_id in self._cancelled:
            return "cancelled"
        expires = (c.model_extra or {}).get("expires_at")
        if isinstance(expires, str):
            with contextlib.suppress(ValueError):
                if datetime.fromisoformat(expires).timestamp() < self.clock():
                    return "expired"
        return None

    async def _on_skipped(self, item: Pending, reason: str) -> None:
        c = item.callout
        self.metrics.broadcast_messages.labels(reason, c.channel.value).inc()
        if reason != "duplicate":
            await self._broadcast_report(c, reason, ())
        elif c.idempotency_key not in self._acked:
            # sent, but the gateway stopped before its report was known to be published
            entry = self.sent.entries[c.idempotency_key]
            await self._broadcast_report(c, "sent", (), entry.at)
        await self._finish_key(c.idempotency_key)

    def _revoked(self, topic: str, partitions: set[int]) -> None:
        broadcast = topic == self._bc_topic
        if broadcast:
            self._bc_paused = False  # partitions come back unpaused
        for item in self.sender.drop_partitions(partitions, broadcast=broadcast):
            self._waiting.pop(item.callout.idempotency_key, None)
        (self.bc_offsets if broadcast else self.offsets).forget(partitions)
        for p in partitions:
            self._committed.pop((topic, p), None)

    # -- after the modem -----------------------------------------------------------------

    def _on_paged(self, item: Pending, paged: Paged) -> None:
        """Runs the instant the modem accepted: durable before anything can interleave."""
        c = item.callout
        now = self.clock()
        if item.broadcast:
            self.sent.add(SentEntry(c.idempotency_key, c.incident_id, c.radio_id, now,
                                    broadcast=True))  # fmt: skip
            self.metrics.broadcast_messages.labels("sent", c.channel.value).inc()
            if c.channel is Channel.SMS:
                self._texted(c.incident_id, c.radio_id, now)
            return
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
        if _broadcast_id(c) is not None:
            await self._broadcast_report(c, kind.value, refs, at)
            return
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

    async def _broadcast_report(
        self, c: CallOut, status: str, refs: tuple[int, ...], at: float | None = None,
        reason: str | None = None,
    ) -> None:  # fmt: skip
        """A broadcast message's outcome, on ``broadcasts`` (never ``acks``: no incident)."""
        record = {
            "schema_version": 1,
            "kind": "report",
            "broadcast_id": c.incident_id,
            "idempotency_key": c.idempotency_key,
            "status": status,
            "radio_id": c.radio_id,
            "channel": c.channel.value,
            "message_refs": list(refs),
            "reason": reason,
            "gateway": self.radio_id,
            "at": datetime.fromtimestamp(at if at is not None else self.clock(), UTC).isoformat(),
            "source": SOURCE,
        }
        value = json.dumps(record, ensure_ascii=False).encode("utf-8")
        await self._produce("broadcasts", c.incident_id, value)
        if status == "sent":
            self._acked.add(c.idempotency_key)

    async def _on_failed(self, item: Pending, error: RadioError) -> None:
        c = item.callout
        reason = error.reason if isinstance(error, PageRefused) else "refused"
        if item.broadcast:
            self.metrics.broadcast_messages.labels("failed", c.channel.value).inc()
            await self._broadcast_report(c, "failed", (), reason=reason)
            await self._finish_key(c.idempotency_key)
            return
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
        for topic, partition, offset in self._waiting.pop(key, []):
            await self._finish(partition, offset, topic)
        self._changed.set()

    async def _finish(self, partition: int, offset: int, topic: str | None = None) -> None:
        topic = topic or self._topic
        tracker = self.bc_offsets if topic == self._bc_topic else self.offsets
        if tracker.finish(partition, offset) is None:
            return
        async with self._commit_lock:
            # The tracker may have moved further while we waited for the lock.
            position = tracker.committed(partition)
            consumer = self._consumer
            if position is None or consumer is None:
                return
            if position <= self._committed.get((topic, partition), -1):
                return
            try:
                await consumer.commit({TopicPartition(topic, partition): position})
            except KafkaError as exc:  # rebalanced away: the new owner starts from the last
                log.warning("commit of %s[%d]@%d failed: %s", topic, partition, position, exc)
                return
            self._committed[(topic, partition)] = position

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
            texted = self._bc_to.get(normalise_number(sender))
            recent = texted is not None and self.clock() - texted[2] <= REPLY_WINDOW
            if texted is not None and recent and _not_an_incident_reply(result, text):
                await self._broadcast_reply(texted[:2], text, sent_at, reply_id)
                return
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

    async def _broadcast_reply(
        self, broadcast: tuple[str, str], text: str, sent_at: datetime | None,
        reply_id: str | None,
    ) -> None:  # fmt: skip
        """A reply ("收到") from someone a broadcast reached: recorded on ``broadcasts``,
        never an Ack of any incident."""
        broadcast_id, radio_id = broadcast
        record = {
            "schema_version": 1,
            "kind": "reply",
            "broadcast_id": broadcast_id,
            "radio_id": radio_id,
            "text": text[:500],
            "sent_at": sent_at.isoformat() if sent_at else None,
            "reply_id": reply_id,
            "gateway": self.radio_id,
            "at": datetime.fromtimestamp(self.clock(), UTC).isoformat(),
            "source": SOURCE,
        }
        value = json.dumps(record, ensure_ascii=False).encode("utf-8")
        await self._produce("broadcasts", broadcast_id, value)
        self.metrics.broadcast_replies.inc()

    # -- broadcasts: cancels and other gateways' reports ---------------------------------

    async def _follow_broadcasts(self) -> None:
        """``broadcasts`` from its start, then as it grows: which broadcasts were
        cancelled, and which messages any gateway sent (so a message read again after a
        rebalance or a restart is not sent twice). ``broadcasts_caught_up`` once the
        topic's end as of the start was read."""
        topic = self.settings.topic("broadcasts")
        parts = await partitions_of(self.settings, topic)
        if not parts:
            self.broadcasts_caught_up.set()
            await asyncio.Event().wait()
        consumer = AIOKafkaConsumer(
            **client_kwargs(self.settings),
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            fetch_max_wait_ms=100,
        )
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps)
            todo = {tp for tp in tps if await consumer.position(tp) < end[tp]}
            if not todo:
                self.broadcasts_caught_up.set()
            self._tail = consumer
            since = self.clock() - KEEP_FOR
            while True:
                batch = await consumer.getmany(timeout_ms=200, max_records=5000)
                for records in batch.values():
                    for record in records:
                        self._on_broadcast_record(record.value, since)
                self._tail_read = {tp: await consumer.position(tp) for tp in tps}
                self._changed.set()
                if todo:
                    todo = {tp for tp in todo if self._tail_read[tp] < end[tp]}
                    if not todo:
                        self.broadcasts_caught_up.set()
        finally:
            self._tail = None
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _reports_read(self, within: float = 10.0) -> None:
        """Until every report on ``broadcasts`` as of now was read: a gateway given a
        partition of ``broadcast-messages`` (a rebalance) first learns what the previous
        owner sent, so it sends none of it again."""
        tail = self._tail
        if tail is None:
            return
        try:
            async with asyncio.timeout(within):
                ends = await tail.end_offsets(list(tail.assignment()))
                await self._until(
                    lambda: all(self._tail_read.get(tp, -1) >= end for tp, end in ends.items())
                )
        except (TimeoutError, KafkaError) as exc:
            log.warning("broadcast reports not all read before taking partitions: %r", exc)

    async def _until(self, done: Callable[[], bool]) -> None:
        """Until ``done()``, checked whenever a message finished or the follower read."""
        while True:
            self._changed.clear()
            if done():
                return
            await self._changed.wait()

    async def _settle(self, partitions: set[int], within: float = 15.0) -> None:
        """Until the broadcast messages of revoked ``partitions`` still in flight here are
        sent and reported (their next owner reads the reports before sending)."""
        topic = self._bc_topic

        def busy() -> bool:
            return any(
                t == topic and p in partitions
                for places in self._waiting.values()
                for t, p, _ in places
            )

        try:
            async with asyncio.timeout(within):
                await self._until(lambda: not busy())
        except TimeoutError:
            log.warning("broadcast messages still in flight at a rebalance; moving on")

    def _texted(self, broadcast_id: str, radio_id: str, at: float) -> None:
        """A broadcast texted ``radio_id``: its replies ("收到") are the broadcast's."""
        entry = self.directory.entry(radio_id)
        if entry is not None:
            number = normalise_number(entry.sms_number)
            self._bc_to.pop(number, None)  # the latest broadcast last (oldest dropped first)
            self._bc_to[number] = (broadcast_id, radio_id, at)
            while len(self._bc_to) > _BROADCAST_NUMBERS_KEPT:
                self._bc_to.pop(next(iter(self._bc_to)))

    def _on_broadcast_record(self, value: bytes | None, since: float) -> None:
        try:
            doc = json.loads(value or b"")
            kind, bid = doc.get("kind"), doc.get("broadcast_id")
            if not isinstance(bid, str):
                return
            if kind == "cancel":
                self._cancelled[bid] = self.clock()
                while len(self._cancelled) > _CANCELS_KEPT:
                    self._cancelled.pop(next(iter(self._cancelled)))
            elif kind == "report" and doc.get("status") == "sent" and self.read_history:
                key = doc.get("idempotency_key")
                at = datetime.fromisoformat(str(doc["at"])).timestamp()
                radio_id = str(doc.get("radio_id"))
                if isinstance(key, str) and at >= since and key not in self.sent:
                    self.sent.remember(SentEntry(key, bid, radio_id, at, broadcast=True))
                    self._acked.add(key)
                if doc.get("gateway") == self.radio_id and at >= self.clock() - REPLY_WINDOW:
                    self._texted(bid, radio_id, at)  # its replies come back to this modem
        except (ValueError, TypeError, KeyError, AttributeError):
            return  # not ours to judge: the API's read model counts bad records

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
        topic: str | None = None,
    ) -> None:
        letter = DeadLetter.for_bytes(
            value, topic=topic or self._topic, error=error, partition=partition, offset=offset,
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
_BROADCAST_NUMBERS_KEPT = 20_000
REPLY_WINDOW = 24 * 3600.0
"""How long after a broadcast text a reply from its number counts as the broadcast's."""
"""Numbers a broadcast texted, remembered so their replies are recorded (oldest dropped)."""
_CANCELS_KEPT = 10_000
_NOT_AN_INCIDENT_REPLY = frozenset(
    {
        ReplyRejection.EMPTY,
        ReplyRejection.NO_ACTION,
        ReplyRejection.UNKNOWN_ACTION,
        ReplyRejection.NO_CODE,
        ReplyRejection.NOT_CALLED,
    }
)
"""Rejections that mean "not an answer to a call-out" (not a forged or stale code): from
someone a broadcast just reached, such a text ("收到") is a reply to the broadcast."""


def _not_an_incident_reply(result: RejectedReply, text: str) -> bool:
    """Not an answer to a call-out ("收到"): no action digit and code, and not refused for
    something a forger does (a wrong, expired or someone else's code: those stay on
    ``audit`` as refused replies)."""
    if result.reason not in _NOT_AN_INCIDENT_REPLY:
        return False
    return result.reason is not ReplyRejection.NOT_CALLED or isinstance(parse_reply(text), Rejected)


def _broadcast_id(callout: CallOut) -> str | None:
    value = (callout.model_extra or {}).get("broadcast_id")
    return value if isinstance(value, str) else None


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
        gw = self._gateway
        for topic in {tp.topic for tp in revoked}:
            gw._revoked(topic, {tp.partition for tp in revoked if tp.topic == topic})
        # the group waits for this: the broadcast message in flight is sent and reported
        # before another gateway may take its partition
        await gw._settle({tp.partition for tp in revoked if tp.topic == gw._bc_topic})

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        gw = self._gateway
        if any(tp.topic == gw._bc_topic for tp in assigned):
            await gw._reports_read()
