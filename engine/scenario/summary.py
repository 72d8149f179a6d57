"""What happened to a set of incidents, from the topics' records alone (pure).

Per incident: the zone and its distance, who was called, who answered and when, the
stages after the first (escalations and operators' new stages), and each stage's
latency. Over all: percentiles of raise -> decision beside NFPA 1225's target (90 % of
alarms processed within 60 s) and the share of incidents whose quorum was met.

Input: the latest ``incident-state`` value per incident, the ``decisions`` and the
``acks`` (JSON-ready dicts, as `engine tail` gives them). Output: a JSON-ready dict
(``--json``), a text table, and a PNG of raise -> quorum per incident.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

NFPA_1225_S = 60.0
"""NFPA 1225: 90 % of alarms processed (received -> dispatched) within 60 s."""
NFPA_1225_SHARE = 0.90
REPLIES = ("accept", "decline", "on_scene")
MAX_BARS = 40
"""more incidents than this are plotted as one sorted curve, not a bar each"""


def _t(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _since(raised: datetime, value: str | None) -> float | None:
    at = _t(value)
    return None if at is None else round((at - raised).total_seconds(), 3)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def incident_summary(
    state: dict[str, Any], decisions: list[dict[str, Any]], acks: list[dict[str, Any]]
) -> dict[str, Any]:
    incident = state["incident"]
    raised = datetime.fromisoformat(incident["raised_at"])
    decisions = sorted(decisions, key=lambda d: d["stage"])
    first = decisions[0] if decisions else None
    zone = (first or {}).get("zone") or {}
    groups_of: dict[str, set[str]] = {}  # an address -> every group it was paged for
    for d in decisions:
        for r in d.get("recipients", []):
            for c in r.get("contacts", []):
                groups_of.setdefault(c, set()).add(r["id"])
    answers = []
    for a in sorted(acks, key=lambda a: a["at"]):
        if a["kind"] in REPLIES:
            groups = sorted(groups_of.get(a["radio_id"], ()))
            answers.append(
                {
                    "who": "+".join(groups) or a["radio_id"],
                    "groups": groups,
                    "radio_id": a["radio_id"],
                    "kind": a["kind"],
                    "after_s": _since(raised, a["at"]),
                }
            )
    delivered = [a for a in acks if a["kind"] == "delivered"]
    sent = Counter(a.get("idempotency_key") for a in acks if a["kind"] == "sent")
    timeline = state.get("timeline", [])
    quorum_at = next((e["at"] for e in timeline if "quorum met" in e.get("what", "")), None)
    on_scene_at = next((e["at"] for e in timeline if e.get("state") == "on_scene"), None)
    first_accept = next((a for a in answers if a["kind"] in ("accept", "on_scene")), None)
    called = Counter(r["kind"] for d in decisions for r in d.get("recipients", []))
    return {
        "id": incident["id"],
        "type": incident["type"],
        "priority": incident["priority"],
        "address": incident.get("address"),
        "state": state["state"],
        "zone": zone.get("id"),
        "zone_distance_m": zone.get("distance_m"),
        "called": dict(called),
        "stages": [
            {
                "stage": d["stage"],
                "zone": (d.get("zone") or {}).get("id"),
                "after_s": _since(raised, d.get("decided_at")),
                "why": (d.get("reasons") or [""])[0],
            }
            for d in decisions
        ],
        "decisions": [
            [
                d["stage"],
                (d.get("zone") or {}).get("id"),
                sorted(r["id"] for r in d.get("recipients", [])),
            ]
            for d in decisions
        ],
        "answers": answers,
        "pages_sent": len(sent),
        "pages_repeated": sum(1 for n in sent.values() if n > 1),
        "quorum_met": bool((state.get("quorum") or {}).get("met")) and quorum_at is not None,
        "latency_s": {
            "raise_to_decision": _since(raised, (first or {}).get("decided_at")),
            "raise_to_first_delivery": min(
                (s for s in (_since(raised, a["at"]) for a in delivered) if s is not None),
                default=None,
            ),
            "raise_to_first_accept": first_accept["after_s"] if first_accept else None,
            "raise_to_quorum": _since(raised, quorum_at),
            "raise_to_on_scene": _since(raised, on_scene_at),
        },
    }


def summarise(
    states: list[dict[str, Any]], decisions: list[dict[str, Any]], acks: list[dict[str, Any]]
) -> dict[str, Any]:
    by_incident: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {
        s["incident_id"]: ([], []) for s in states
    }
    for d in decisions:
        if d["incident_id"] in by_incident:
            by_incident[d["incident_id"]][0].append(d)
    for a in acks:
        if a["incident_id"] in by_incident:
            by_incident[a["incident_id"]][1].append(a)
    incidents = [incident_summary(s, *by_incident[s["incident_id"]]) for s in states]
    stages: dict[str, dict[str, float | None]] = {}
    for name in ("raise_to_decision", "raise_to_first_delivery", "raise_to_first_accept",
                 "raise_to_quorum", "raise_to_on_scene"):  # fmt: skip
        values = [v for i in incidents if (v := i["latency_s"][name]) is not None]
        stages[name] = {
            "n": len(values),
            "p50_s": percentile(values, 0.5),
            "p90_s": percentile(values, 0.9),
            "max_s": max(values) if values else None,
        }
    processed = [i["latency_s"]["raise_to_decision"] for i in incidents]
    within = sum(1 for v in processed if v is not None and v <= NFPA_1225_S)
    share = within / len(incidents) if incidents else None
    return {
        "incidents": incidents,
        "decisions_fingerprint": fingerprint(incidents),
        "stages": stages,
        "nfpa_1225": {
            "target": f"{NFPA_1225_SHARE:.0%} of alarms processed within {NFPA_1225_S:.0f} s",
            "processed_within_60s": share,
            "met": share is not None and share >= NFPA_1225_SHARE,
        },
        "pages_sent": sum(i["pages_sent"] for i in incidents),
        "pages_repeated": sum(i["pages_repeated"] for i in incidents),
        "quorum_met_share": (
            sum(1 for i in incidents if i["quorum_met"]) / len(incidents) if incidents else None
        ),
    }


def fingerprint(incidents: list[dict[str, Any]]) -> str:
    """A short hash of every decision (stage, zone, who was called), by the incidents'
    order and not their random ids: two runs of one scenario decided alike when their
    fingerprints match."""
    text = json.dumps([i["decisions"] for i in incidents], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def render(summary: dict[str, Any]) -> str:
    lines = []
    for i in summary["incidents"]:
        lat = i["latency_s"]
        dist = "" if i["zone_distance_m"] is None else f" ({i['zone_distance_m']:.0f} m)"
        lines.append(f"{i['id']}  {i['priority']} {i['type']}  {i['address'] or ''}")
        called = ", ".join(f"{n} {k}" for k, n in sorted(i["called"].items()))
        lines.append(f"  zone {i['zone'] or 'none'}{dist}; called {called}; now {i['state']}")
        for st in i["stages"][1:]:
            lines.append(f"  +{_s(st['after_s'])} s stage {st['stage']} ({st['zone'] or '-'}): "
                         f"{st['why'][:90]}")  # fmt: skip
        kinds = Counter(a["kind"] for a in i["answers"])
        first = ", ".join(f"{a['who']} {a['kind']} +{_s(a['after_s'])} s" for a in i["answers"][:3])
        lines.append(f"  answers {dict(kinds)}; first: {first or 'none'}")
        lines.append(
            f"  raise->decision {_s(lat['raise_to_decision'])} s, ->first delivery "
            f"{_s(lat['raise_to_first_delivery'])} s, ->first accept "
            f"{_s(lat['raise_to_first_accept'])} s, ->quorum {_s(lat['raise_to_quorum'])} s, "
            f"->on scene {_s(lat['raise_to_on_scene'])} s"
        )
    lines.append("")
    lines.append(f"{'stage':<26} {'n':>3} {'p50 s':>7} {'p90 s':>7} {'max s':>7}")
    for name, f in summary["stages"].items():
        lines.append(f"{name:<26} {f['n']:>3} {_s(f['p50_s']):>7} {_s(f['p90_s']):>7} "
                     f"{_s(f['max_s']):>7}")  # fmt: skip
    nfpa = summary["nfpa_1225"]
    share, quorum = nfpa["processed_within_60s"], summary["quorum_met_share"]
    lines.append(
        f"NFPA 1225 ({nfpa['target']}): {'-' if share is None else f'{share:.0%}'} "
        f"{'met' if nfpa['met'] else 'NOT met'}; quorum met for "
        f"{'-' if quorum is None else f'{quorum:.0%}'} of incidents"
    )
    for b in summary.get("broadcasts", []):
        lines.append(
            f"broadcast {b['broadcast_id']} to {', '.join(b['to'] or [])}: {b['state']}; "
            f"{b['recipients']} people, {b['messages']} messages ({b['poc_groups']} PoC group "
            f"calls): sent {b['sent']}, delivered {b['delivered']}, failed {b['failed']}, "
            f"left {b['left']} (about {b['eta_s']:.0f} s), replies {b['replies']}"
        )
    lines.append(
        f"pages sent {summary['pages_sent']} (each a call-out's own key), reported sent twice "
        f"{summary['pages_repeated']}; decisions fingerprint: {summary['decisions_fingerprint']}"
    )
    return "\n".join(lines)


def plot(summary: dict[str, Any], path: Path) -> None:
    """Raise -> quorum per incident (bars), the ones never met marked, 60 s marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["incidents"]
    if len(rows) > MAX_BARS:
        return _plot_many(rows, path, plt)
    labels = [f"{i['priority']} {i['type']} {i['id'][-6:]}" for i in rows]
    values = [i["latency_s"]["raise_to_quorum"] for i in rows]
    fig, ax = plt.subplots(figsize=(8, 0.45 * max(3, len(rows)) + 1.2), dpi=110)
    top = max([v for v in values if v is not None] + [NFPA_1225_S])
    for y, v in enumerate(values):
        if v is None:
            ax.barh(y, top * 1.05, color="#f5b7b1", hatch="//", edgecolor="#c0392b")
            ax.text(top * 0.02, y, "no quorum", va="center", fontsize=8, color="#922b21")
        else:
            ax.barh(y, v, color="#2e86c1")
            ax.text(v, y, f" {v:.1f} s", va="center", fontsize=8)
    ax.axvline(NFPA_1225_S, color="#555", linestyle="--", linewidth=1)
    ax.text(NFPA_1225_S, -0.8, " 60 s", fontsize=8, color="#555")
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds from raise to ack quorum (zone team + linked units)")
    ax.set_title("Raise -> quorum per incident")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_many(rows: list[dict[str, Any]], path: Path, plt: Any) -> None:
    """Raise -> quorum of many incidents: the share met within t, by priority."""
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for prio in sorted({i["priority"] for i in rows}):
        of = [i for i in rows if i["priority"] == prio]
        met = sorted(v for i in of if (v := i["latency_s"]["raise_to_quorum"]) is not None)
        xs = [0.0, *met]
        ys = [0.0, *(100 * (k + 1) / len(of) for k in range(len(met)))]
        ax.step(xs, ys, where="post", label=f"{prio}: {len(met)}/{len(of)} met")
    ax.axvline(NFPA_1225_S, color="#555", linestyle="--", linewidth=1)
    ax.set_xlabel("seconds from raise to ack quorum")
    ax.set_ylabel("% of incidents with quorum")
    ax.set_ylim(0, 100)
    ax.set_title(f"Raise -> quorum, {len(rows)} incidents")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
