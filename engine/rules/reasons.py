"""Human-readable reasons, Chinese first (the command centre's language), then English.

One line per reason: ``中文 | English``. Kept in one place so wording stays consistent
between the decision, the live board and the replay output.
"""

from __future__ import annotations


def metres(d: float) -> str:
    return f"{d:.0f}"


def both(zh: str, en: str) -> str:
    return f"{zh} | {en}"


def zone_chosen(zone_id: str, name: str, d: float, stage: int) -> str:
    m = f"{d:.0f}"  # metres(d), formatted once
    if stage == 0:
        return (
            f"最近的可用先莞队 {name}（{zone_id}，{m}米） | "
            f"nearest available key zone team {zone_id} ({m} m)"
        )
    return (
        f"升级：下一最近的先莞队 {name}（{zone_id}，{m}米） | "
        f"escalation: next nearest key zone team {zone_id} ({m} m)"
    )


def zone_skipped_busy(zone_id: str, incident_id: str) -> str:
    return both(
        f"跳过 {zone_id}：正在处置 {incident_id}",
        f"skipped {zone_id}: committed to {incident_id}",
    )


def zone_preempted(zone_id: str, incident_id: str, priority: str) -> str:
    return both(
        f"抢占 {zone_id}：原处置 {incident_id}（{priority}），本警情优先",
        f"preempted {zone_id} from {incident_id} ({priority}): this incident has priority",
    )


def no_zone(max_m: float) -> str:
    return both(
        f"{metres(max_m)}米内没有可用的先莞队，已通知指挥中心",
        f"no available key zone team within {metres(max_m)} m; command centre alerted",
    )


def units(n: int, wanted: int, zone_id: str) -> str:
    return both(
        f"{zone_id} 的联动单位 {n} 个（计划 {wanted} 个，1+10）",
        f"{n} linked units of {zone_id} (plan: {wanted}, the 1+10 model)",
    )


def quorum(zone_team: bool, units_needed: int, timeout_s: float) -> str:
    zh_team = "先莞队确认 + " if zone_team else ""
    en_team = "the zone team plus " if zone_team else ""
    return both(
        f"需 {zh_team}至少 {units_needed} 个联动单位接警，{timeout_s:.0f}秒内",
        f"quorum: {en_team}at least {units_needed} linked units accept within {timeout_s:.0f} s",
    )


def command_centre(why_zh: str, why_en: str) -> str:
    return both(f"通知指挥中心：{why_zh}", f"command centre alerted: {why_en}")


def plan_response(name: str, stage: int, stages: int) -> str:
    return both(
        f"预案 {name}，第 {stage + 1}/{stages} 级",
        f"plan response {name}, stage {stage + 1} of {stages}",
    )
