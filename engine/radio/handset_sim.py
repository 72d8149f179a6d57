"""``engine simulate handsets``: the modem simulator on a pty with N handsets and faults."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.radio.simulator import HandsetScript, ModemSimulator, PtyModem

log = logging.getLogger(__name__)

BEHAVIOURS = ("accept", "decline", "on-scene", "silent", "mixed")


@dataclass(frozen=True)
class Faults:
    """Fault injection: every interval in seconds (None: never)."""

    drop_every: int | None = None  # drop the answer to every Nth command
    garble_every: float | None = None  # write noise bytes
    reboot_every: float | None = None
    unplug_every: float | None = None
    unplug_for: float = 2.0


def numbers(count: int) -> list[str]:
    """Made-up mainland mobile numbers for handsets with no registry."""
    return [f"1380000{i:04d}" for i in range(1, count + 1)]


Track = Sequence[tuple[float, float]]
"""Waypoints (lat, lon) a handset moves through, round and round."""


def patrol_tracks(registry_dir: Path, *, step_deg: float = 0.002) -> dict[int, Track]:
    """For every handset held by a patrol member: a square beat around its patrol base
    (about 200 m a side), by PoC user id."""
    from engine.registry.registry import load_registry

    registry = load_registry(registry_dir)
    tracks: dict[int, Track] = {}
    for radio in registry.radios.values():
        holder = registry.volunteers.get(radio.holder)
        base = registry.placed.get(holder.group_id or "") if holder else None
        if base is None or base.kind.value != "patrol_base" or not radio.poc_id.isdigit():
            continue
        lat, lon = base.location.lat, base.location.lon
        d = step_deg
        tracks[int(radio.poc_id)] = [(lat, lon), (lat + d, lon), (lat + d, lon + d), (lat, lon + d)]
    return tracks


def numbers_of_groups(registry_dir: Path, groups: Sequence[str]) -> frozenset[str]:
    """Every number that answers for the given groups (key zones, units, watch groups,
    patrols): their members' phones and the SMS numbers of the radios they hold."""
    from engine.registry.registry import load_registry

    registry = load_registry(registry_dir)
    wanted = set(groups)
    unknown = wanted - set(registry.placed)
    if unknown:
        raise ValueError(f"not in the registry: {', '.join(sorted(unknown))}")
    members = {v.id for v in registry.volunteers.values() if {v.group_id, v.unit_id} & wanted}
    out = {registry.volunteers[m].phone for m in members}
    out |= {r.sms_number for r in registry.radios.values() if r.holder in members}
    return frozenset(out)


def parse_delay(text: str) -> tuple[float, float]:
    """``"2"`` or ``"1-3"`` (seconds) -> (min, max); ValueError when it is not that."""
    low, sep, high = text.partition("-")
    lo = float(low)
    hi = float(high) if sep else lo
    if not (0.0 <= lo <= hi <= 600.0):
        raise ValueError(f"not a delay MIN[-MAX] in seconds (0..600): {text!r}")
    return lo, hi


def script_for(
    behaviour: str, index: int, delay: float, on_scene_after: float, spread: float = 0.0
) -> HandsetScript:
    """How handset ``index`` answers. ``mixed``: mostly accept then on scene, some decline,
    some stay silent, as a real call-out goes. With ``spread`` each answers after its own
    time, ``delay`` times 1 - spread .. 1 + spread (by the golden ratio, not at random):
    people do not all answer in the same second, and their order is the same every run."""
    if behaviour == "mixed":
        behaviour = "silent" if index % 7 == 6 else "decline" if index % 5 == 4 else "accept"
    delay *= 1.0 + spread * (2.0 * ((index * 0.6180339887) % 1.0) - 1.0)
    if behaviour == "accept":
        return HandsetScript(((delay, "1"), (delay + on_scene_after, "3")))
    if behaviour == "decline":
        return HandsetScript.decline(delay)
    if behaviour == "on-scene":
        return HandsetScript.on_scene(delay)
    return HandsetScript()


async def run_handsets(
    phone_numbers: Sequence[str],
    *,
    behaviour: str = "accept",
    reply_delay: float = 2.0,
    on_scene_after: float = 30.0,
    link: Path | None = None,
    faults: Faults = Faults(),
    announce: Callable[[str], None] = print,
    seed: int | None = None,
    tracks: Mapping[int, Track] | None = None,
    positions_every: float | None = None,
    silent: frozenset[str] = frozenset(),
    declining: frozenset[str] = frozenset(),
    offline: frozenset[str] = frozenset(),
    spread: float = 0.0,
    sms_delay: tuple[float, float] = (0.0, 0.0),
) -> None:
    """Serve until cancelled (Ctrl-C). Numbers in ``silent`` never answer, those in
    ``declining`` always decline, those ``offline`` receive nothing (no delivery). Each
    SMS takes the network ``sms_delay`` seconds (uniform between min and max) before the
    module answers ``+CMGS``."""
    if behaviour not in BEHAVIOURS:
        raise ValueError(f"behaviour must be one of {BEHAVIOURS}")
    modem = ModemSimulator(
        delivery_reports=True,
        sms_delay=sms_delay,
        seed=seed,
        handsets={
            n: script_for(
                "silent" if n in silent else "decline" if n in declining else behaviour,
                i,
                reply_delay,
                on_scene_after,
                spread,
            )
            for i, n in enumerate(phone_numbers)
        },
    )
    modem.offline |= offline
    rng = random.Random(seed)
    async with PtyModem(modem, link=link) as host:
        announce(host.path)
        if faults.drop_every:
            every = faults.drop_every
            seen = 0

            def drop(_line: str) -> None:
                nonlocal seen
                seen += 1
                if seen % every == 0:
                    modem.drop_responses(1)

            host.on_command = drop
        tasks: list[asyncio.Task[None]] = []

        def periodic(interval: float | None, action: Callable[[], object]) -> None:
            async def loop() -> None:
                assert interval is not None
                while True:
                    await asyncio.sleep(interval)
                    result = action()
                    if asyncio.iscoroutine(result):
                        await result

            if interval:
                tasks.append(asyncio.create_task(loop()))

        def garble() -> None:
            host.inject_noise(bytes(rng.randrange(256) for _ in range(rng.randint(1, 16))))

        async def unplug() -> None:
            log.warning("simulator: unplugging %s for %.1fs", host.path, faults.unplug_for)
            host.unplug()
            await asyncio.sleep(faults.unplug_for)
            host.replug()
            announce(host.path)

        step = 0

        def move() -> None:
            nonlocal step
            for poc_id, track in (tracks or {}).items():
                lat, lon = track[step % len(track)]
                host.modem.report_position(poc_id, lat, lon)
            host._poke()
            step += 1

        if tracks:
            periodic(positions_every or 60.0, move)
        periodic(faults.garble_every, garble)
        periodic(faults.reboot_every, host.reboot)
        periodic(faults.unplug_every, unplug)
        # A scenario's unplug_radio: SIGUSR1 pulls the cable, SIGUSR2 plugs it back in.
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, host.unplug)

        def replug() -> None:
            host.replug()
            announce(host.path)

        loop.add_signal_handler(signal.SIGUSR2, replug)
        try:
            await asyncio.Event().wait()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
