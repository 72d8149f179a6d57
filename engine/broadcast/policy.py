"""When a broadcast may go and until when (pure: the caller passes the time).

Quiet hours (Tangxia: 22:00-07:00, Asia/Shanghai): a broadcast whose priority is held in
quiet hours (``info`` by default; never ``urgent``) is refused while they last, and one
accepted before they start expires when they start: its unsent messages are dropped
rather than waking people at night.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from engine.broadcast.model import DEFAULT_EXPIRES_IN_S, BroadcastPriority
from engine.registry.models import TimeWindow

TANGXIA_TZ = "Asia/Shanghai"
QUIET_HOURS = "22:00-07:00"


@dataclass(frozen=True)
class QuietHours:
    window: TimeWindow
    tz: ZoneInfo
    held: frozenset[BroadcastPriority] = frozenset({BroadcastPriority.INFO})

    @classmethod
    def parse(
        cls,
        window: str | None,
        tz: str = TANGXIA_TZ,
        held: Iterable[str] = (BroadcastPriority.INFO,),
    ) -> QuietHours | None:
        """None when ``window`` is empty (no quiet hours). ``urgent`` is never held."""
        if not window:
            return None
        priorities = frozenset(BroadcastPriority(p) for p in held) - {BroadcastPriority.URGENT}
        return cls(TimeWindow.model_validate(window), ZoneInfo(tz), priorities)

    def holds(self, priority: BroadcastPriority, at: datetime) -> bool:
        """True when a broadcast of ``priority`` must not go at ``at``."""
        return priority in self.held and self.window.contains(at.astimezone(self.tz).time())

    def next_start(self, at: datetime) -> datetime:
        """The next time quiet hours begin, after ``at`` (aware)."""
        local = at.astimezone(self.tz)
        start = local.replace(
            hour=self.window.start.hour, minute=self.window.start.minute, second=0, microsecond=0
        )
        if start <= local:
            start += timedelta(days=1)
        return start


class QuietHoursRefusal(Exception):
    """Refused: a broadcast of this priority may not go now."""


def check_and_expiry(
    priority: BroadcastPriority,
    now: datetime,
    expires_in_s: int | None,
    quiet: QuietHours | None,
) -> datetime:
    """The broadcast's expiry, or :class:`QuietHoursRefusal`. A held priority expires
    no later than the start of the next quiet hours."""
    expires = now + timedelta(seconds=expires_in_s or DEFAULT_EXPIRES_IN_S)
    if quiet is None or priority not in quiet.held:
        return expires
    if quiet.holds(priority, now):
        local = now.astimezone(quiet.tz)
        raise QuietHoursRefusal(
            f"quiet hours {quiet.window} ({quiet.tz.key}; now {local:%H:%M}): no {priority.value} "
            f"broadcast until {quiet.window.end:%H:%M}; send it then, or as urgent"
        )
    return min(expires, quiet.next_start(now))
