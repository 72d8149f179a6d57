"""Plain-text tables of the planning reports (the JSON is the full record)."""

from __future__ import annotations

from typing import Any


def _metres(m: float) -> str:
    return f"{m:g} m" if m < 1000 else f"{m / 1000:g} km"


def _pcts(shares: dict[str, float], radii: list[str]) -> str:
    return " ".join(f"{100 * shares[r]:5.1f}" for r in radii)


def coverage_table(report: dict[str, Any], siting: dict[str, Any] | None) -> str:
    radii = [f"{r:g}" for r in report["radii_m"]]
    head = "/".join(
        f"{float(r):g} m" if float(r) < 1000 else f"{float(r) / 1000:g} km" for r in radii
    )
    rules = report["quorum_rules"]
    first = rules[0]["label"] if rules else None
    lines = [
        f"Coverage of {report['area']}: {report['cells']:,} cells of {report['grid_step_m']:g} m "
        f"({report['area_km2']:.1f} km²), {report['units']:,} units, "
        f"{report['buildings']:,} buildings, {report['zones']} key zone teams; "
        f"plan {report['plan']['name']} ({report['plan']['version']})",
        f"Shares (%) within {head} of a key zone team that can be called; hours at HH:30 local.",
        "",
        f"{'hour':<10}{'zones':>6}  {'area':^17}  {'units':^17}  {'buildings':^17}"
        + (f"  {'quorum ' + first + ' area':^17}" if first else "")
        + f"  {'patrols':>7} {'posts':>5}  {'anyone on duty area':^19}",
    ]
    for row in report["rows"]:
        z = row["zone"]
        line = (
            f"{row['label']:<10}{row['zones_available']:>6}  {_pcts(z['area'], radii)}  "
            f"{_pcts(z['units'], radii)}  {_pcts(z['buildings'], radii)}"
        )
        if first:
            line += f"  {_pcts(row['quorum'][first]['area'], radii)}"
        if "any_on_duty" in row:
            line += (
                f"  {row['patrols_on_duty']:>7} {row['school_posts_on_duty']:>5}  "
                f"{_pcts(row['any_on_duty']['area'], radii)}"
            )
        lines.append(line)
    all_row = report["rows"][0]
    lines += ["", f"Quorum reach, every zone team on duty (share % within {head}):"]
    lines.append(f"{'quorum':<9}{'area':^18} {'units':^18} {'buildings':^18} responses")
    for q in rules:
        s = all_row["quorum"][q["label"]]
        lines.append(
            f"{q['label']:<9}{_pcts(s['area'], radii)}  {_pcts(s['units'], radii)}  "
            f"{_pcts(s['buildings'], radii)}  {', '.join(q['responses'])}"
        )
    if siting is not None:
        lines += ["", *siting_lines(report, siting)]
    return "\n".join(lines) + "\n"


def siting_lines(report: dict[str, Any], siting: dict[str, Any]) -> list[str]:
    r = _metres(siting["radius_m"])
    n = report["zones"]
    out = [f"Where one more key zone team helps most (units newly within {r}; greedy):"]
    for s in siting["add"]:
        before, after = s["units_share"]
        out.append(
            f"  #{n + s['rank']}: at unit {s['at_unit']} ({s['lat']:.6f}, {s['lon']:.6f}): "
            f"+{s['units_gained']} units (+{s['buildings_gained']} buildings), "
            f"+{s['area_km2_gained']:.2f} km²; units within {r}: "
            f"{100 * before:.1f}% -> {100 * after:.1f}%"
        )
    out.append(f"Zone teams whose loss would hurt most (what only they cover within {r}):")
    for z in siting["loss"]:
        out.append(
            f"  {z['zone']}: -{z['units_lost']} units (-{z['buildings_lost']} buildings), "
            f"-{z['area_km2_lost']:.2f} km²"
        )
    u = siting["unlinked"]
    link = _metres(u["link_radius_m"])
    top = ", ".join(f"{x['zone']} {x['units']}" for x in u["by_nearest_zone"][:5])
    out.append(
        f"Units no zone team links within {link}: {u['unlinked']:,} of "
        f"{u['callable_units']:,} callable; {u['linkable_to_a_zone_within_radius']:,} have a "
        f"zone team within {link} to link to (most: {top}); "
        f"{u['no_zone_within_radius']:,} have none."
    )
    return out


def compare_table(report: dict[str, Any], show: int) -> str:
    o, n = report["old"], report["new"]
    lines = [
        f"Plan compare over {report['incidents']:,} incidents ({report['replies']}):",
        f"  old: {report['old_plan']['name']} {report['old_plan']['version']} "
        f"({report['old_plan']['origin']})",
        f"  new: {report['new_plan']['name']} {report['new_plan']['version']} "
        f"({report['new_plan']['origin']})",
        "",
        f"{'':<26}{'old':>10}{'new':>10}",
    ]
    for key, label in (
        ("quorum_met", "quorum met"),
        ("median_quorum_s", "median time to quorum s"),
        ("mean_quorum_s", "mean time to quorum s"),
        ("escalated", "escalated"),
        ("unanswered", "unanswered"),
        ("no_zone", "no zone team in range"),
        ("mean_people_called", "mean people called"),
        ("mean_zone_distance_m", "mean zone distance m"),
    ):
        lines.append(f"{label:<26}{_cell(o[key]):>10}{_cell(n[key]):>10}")
    kinds = ", ".join(f"{k} {v}" for k, v in report["changed_by_kind"].items() if v)
    lines += ["", f"Changed incidents: {report['changed']:,} ({kinds or 'none'})"]
    rows = report["incidents_changed"][:show]
    if rows:
        lines.append(
            f"{'incident':<22}{'type':<15}{'prio':<5}{'zone old->new':<18}"
            f"{'quorum':>7}{'people':>10}{'to quorum s':>16}{'stages':>8}  changes"
        )
    for r in rows:
        a, b = r["old"], r["new"]
        zone = f"{a['zone']}->{b['zone']}" if a["zone"] != b["zone"] else str(a["zone"])
        lines.append(
            f"{r['incident_id']:<22}{r['type']:<15}{r['priority']:<5}{zone:<18}"
            f"{a['ack_quorum']:>3}->{b['ack_quorum']:<3}"
            f"{a['people']:>5}->{b['people']:<4}"
            f"{_cell(a['quorum_s']):>7}->{_cell(b['quorum_s']):<8}"
            f"{a['stages']:>3}->{b['stages']:<3}  {','.join(r['changes'])}"
        )
    if report["changed"] > len(rows):
        lines.append(f"... and {report['changed'] - len(rows):,} more (--json FILE has all)")
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    return "-" if value is None else str(value)
