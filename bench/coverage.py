"""Coverage of Tangxia at a 50 m grid for 24 hours: the planning code's fast path
(one cKDTree query over every cell and unit per set of zone teams, issue 16) against
brute force, in the same run, with every answer compared.

    .venv/bin/python bench/coverage.py [--grid-m 50] [--repeat 3] [--out FILE]

Two days are timed:

- shipped: the shipped data and plan as `engine coverage --day` runs them (the whole
  report: 24 hours plus the "all zones" row, zone coverage at 300 m / 500 m / 1 km of
  area, units and buildings, the plan's quorum reach, patrols and school posts on duty).
  Zone teams have no duty windows in the registry, so every hour has the same zone set
  and the zone distances are worked out once.
- roster: a seeded duty roster in which every zone team is off for 3 random hours of
  the day, so each hour has its own set of zone teams (24 sets): the zone part alone
  (nearest zone team from every cell and unit, shares at the three radii), 24 times.

Brute force for the roster day, the same work without the tree:

- reference: :class:`engine.geo.brute.BruteForceIndex`, the project's definition of the
  right answer, one nearest query per cell and unit and hour (1.6 million queries);
- numpy: the dense distance matrix of every cell and unit to every zone team on duty,
  one hour at a time, and its minimum.

And, not brute force: the dispatch :class:`engine.geo.index.SpatialIndex` asked the same
1.6 million questions one at a time (zones off duty marked unavailable), to show what
asking the tree for every point at once buys.

Every cell's and unit's nearest zone team (the reference's (distance, id) order) and
distance (to a micrometre) are compared with the fast path's, and the shares must be
equal. Timings: best of ``--repeat`` runs for the fast path and numpy, one run of the
reference and of the SpatialIndex (about a minute each); gc off. Prints a table and
writes JSON (default bench/results/coverage.json).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import sys
import time
from datetime import date
from datetime import time as dtime
from pathlib import Path
from typing import Any

import numpy as np
import scipy

from engine.config import DEFAULT_REGISTRY
from engine.geo.areas import AREA_FILE, load_area
from engine.geo.brute import BruteForceIndex
from engine.geo.distance import EARTH_RADIUS_M
from engine.geo.index import SpatialIndex
from engine.geo.points import Filter, IndexedPoint
from engine.planning.coverage import RADII_M, Coverage, coverage_report, hour_instants
from engine.planning.grid import build_grid
from engine.planning.nearest import Points
from engine.planning.network import Network
from engine.registry.models import TimeWindow
from engine.registry.registry import load_registry
from engine.rules.plan import load_plan
from engine.rules.world import World

REPO = Path(__file__).resolve().parents[1]
DAY = date(2026, 11, 30)  # a Monday: school posts on duty

TANGXIA = load_area(DEFAULT_REGISTRY / AREA_FILE)


def roster(zone_ids: list[str], seed: int) -> dict[str, tuple[TimeWindow, ...]]:
    """Every zone team on duty 21 hours: off for 3 consecutive random hours."""
    rng = random.Random(seed)
    out = {}
    for z in zone_ids:
        off = rng.randrange(24)
        out[z] = (TimeWindow(start=dtime((off + 3) % 24), end=dtime(off)),)
    return out


def fast_day(net: Network, grid: Any, instants: list[Any]) -> tuple[Coverage, list[Any]]:
    cov = Coverage(net, grid)
    rows = []
    for t in instants:
        d = cov.distances(net.zones_on_duty(t))
        rows.append((d, cov.shares(d.cells, d.units, d)))
    return cov, rows


def numpy_day(net: Network, cells: Points, sets: list[frozenset[int]]) -> list[Any]:
    out = []
    for zone_set in sets:
        z = np.array(sorted(zone_set), dtype=np.intp)
        per_pop = []
        for pts in (cells, net.units):
            best = np.full(len(pts), np.inf)
            arg = np.full(len(pts), -1, dtype=np.intp)
            for lo in range(0, len(pts), 8192):  # (rows x zones) at a time: bounded memory
                phi, lam = pts.phi[lo : lo + 8192, None], pts.lam[lo : lo + 8192, None]
                zp, zl = net.zones.phi[z][None, :], net.zones.lam[z][None, :]
                a = (
                    np.sin((zp - phi) * 0.5) ** 2
                    + np.cos(phi) * np.cos(zp) * np.sin((zl - lam) * 0.5) ** 2
                )
                d = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(a, 1.0)))
                k = np.argmin(d, axis=1)
                best[lo : lo + 8192] = d[np.arange(d.shape[0]), k]
                arg[lo : lo + 8192] = z[k]
            per_pop.append((best, arg))
        out.append(per_pop)
    return out


def reference_day(net: Network, cells: Points, sets: list[frozenset[int]]) -> list[Any]:
    out = []
    for zone_set in sets:
        brute = BruteForceIndex(
            IndexedPoint(net.zone_ids[i], "key_zone", float(net.zones.lat[i]),
                         float(net.zones.lon[i])) for i in sorted(zone_set)
        )  # fmt: skip
        per_pop = []
        for pts in (cells, net.units):
            hits = [
                brute.nearest(a, b)[0]
                for a, b in zip(pts.lat.tolist(), pts.lon.tolist(), strict=True)
            ]
            per_pop.append((np.array([h.distance_m for h in hits]), [h.id for h in hits]))
        out.append(per_pop)
    return out


def index_day(net: Network, cells: Points, sets: list[frozenset[int]]) -> list[Any]:
    index = SpatialIndex(
        IndexedPoint(net.zone_ids[i], "key_zone", float(net.zones.lat[i]),
                     float(net.zones.lon[i])) for i in range(len(net.zone_ids))
    )  # fmt: skip
    available = Filter.of(available_only=True)
    out = []
    for zone_set in sets:
        for i, zid in enumerate(net.zone_ids):
            index.set_available(zid, i in zone_set)
        per_pop = []
        for pts in (cells, net.units):
            hits = [index.nearest(a, b, 1, available)[0]
                    for a, b in zip(pts.lat.tolist(), pts.lon.tolist(), strict=True)]  # fmt: skip
            per_pop.append((np.array([h.distance_m for h in hits]), [h.id for h in hits]))
        out.append(per_pop)
    return out


def best_of(repeat: int, fn: Any) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter()
            result = fn()
            best = min(best, time.perf_counter() - t0)
        finally:
            gc.enable()
    return best, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid-m", type=float, default=50.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--skip-reference", action="store_true", help="no BruteForceIndex run")
    parser.add_argument("--skip-index", action="store_true", help="no per-point SpatialIndex run")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "coverage.json")
    args = parser.parse_args()
    started = time.perf_counter()

    plan = load_plan()
    world = World.build(load_registry(REPO / "data" / "tangxia"))
    tz = plan.plan.timezone
    instants = hour_instants(DAY, tz)
    grid_s, grid = best_of(args.repeat, lambda: build_grid(TANGXIA, args.grid_m))
    net = Network.from_world(world)
    shipped_s, report = best_of(
        args.repeat, lambda: coverage_report(world, net, grid, plan, instants)
    )

    rostered = Network.from_world(world, duty=roster(list(net.zone_ids), args.seed))
    sets = [rostered.zones_on_duty(t) for t in instants]
    fast_s, (cov, fast) = best_of(args.repeat, lambda: fast_day(rostered, grid, instants))
    cells = cov.cells
    numpy_s, dense = best_of(args.repeat, lambda: numpy_day(rostered, cells, sets))
    ref_s, ref = (
        (None, None)
        if args.skip_reference
        else best_of(1, lambda: reference_day(rostered, cells, sets))
    )
    index_s, by_index = (
        (None, None) if args.skip_index else best_of(1, lambda: index_day(rostered, cells, sets))
    )

    # every answer compared
    max_diff_numpy = max_diff_ref = 0.0
    same_ids = True
    for h, (d, _) in enumerate(fast):
        for k, (dist, zone) in enumerate(((d.cells, d.cell_zone), (d.units, d.unit_zone))):
            nd, nz = dense[h][k]
            same_ids &= bool(np.array_equal(nz, zone))
            max_diff_numpy = max(max_diff_numpy, float(np.max(np.abs(nd - dist))))
            for other in (o for o in (ref, by_index) if o is not None):
                rd, rz = other[h][k]
                max_diff_ref = max(max_diff_ref, float(np.max(np.abs(rd - dist))))
                same_ids &= [rostered.zone_ids[i] for i in zone.tolist()] == rz
                for r in RADII_M:
                    assert int((dist <= r).sum()) == int((rd <= r).sum()), (h, k, r)
    assert max_diff_numpy < 1e-6 and max_diff_ref < 1e-6 and same_ids

    queries = 24 * (len(grid) + len(net.unit_ids))
    all_row = report["rows"][0]
    result = {
        "grid_m": args.grid_m,
        "cells": len(grid),
        "units": len(net.unit_ids),
        "zones": len(net.zone_ids),
        "hours": 24,
        "nearest_queries_per_day": queries,
        "grid_build_s": grid_s,
        "shipped_report_s": shipped_s,
        "shipped_zone_sets_computed": report["zone_sets_computed"],
        "roster_zone_sets": len(set(sets)),
        "roster_fast_s": fast_s,
        "roster_numpy_brute_s": numpy_s,
        "roster_reference_brute_s": ref_s,
        "roster_spatial_index_per_point_s": index_s,
        "speedup_vs_numpy": numpy_s / fast_s,
        "speedup_vs_reference": None if ref_s is None else ref_s / fast_s,
        "speedup_vs_spatial_index_per_point": None if index_s is None else index_s / fast_s,
        "max_distance_diff_m": {"numpy": max_diff_numpy, "reference": max_diff_ref},
        "nearest_zone_identical": same_ids,
        "tangxia_all_zones": {
            "zone": all_row["zone"],
            "quorum": all_row["quorum"],
        },
        "roster_shares_by_hour": [shares for _, shares in fast],
    }
    print(f"Tangxia coverage, {args.grid_m:g} m grid: {len(grid):,} cells, "
          f"{len(net.unit_ids):,} units, {len(net.zone_ids)} zone teams, 24 hours")  # fmt: skip
    print(f"{'what':<58}{'seconds':>10}")
    rows = [
        ("grid over the outline", grid_s),
        ("shipped: whole `engine coverage` report (1 zone set)", shipped_s),
        ("roster (24 zone sets): fast path, zone coverage", fast_s),
        ("roster: numpy dense-matrix brute force", numpy_s),
        ("roster: BruteForceIndex reference, one query per point", ref_s),
        ("roster: SpatialIndex, one query per point (not brute force)", index_s),
    ]
    for what, s in rows:
        print(f"{what:<58}{'-' if s is None else f'{s:10.3f}':>10}")
    vs_ref = "" if ref_s is None else f", {result['speedup_vs_reference']:.0f}x vs reference"
    if index_s is not None:
        vs_ref += f", {index_s / fast_s:.0f}x vs SpatialIndex per point"
    print(f"speed-up: {result['speedup_vs_numpy']:.1f}x vs numpy{vs_ref}")
    checked = (
        ["numpy"] + ["reference"] * (ref is not None) + ["SpatialIndex"] * (by_index is not None)
    )
    print(f"answers: nearest zone identical ({', '.join(checked)}), "
          f"distances within {max(max_diff_numpy, max_diff_ref):.1e} m")  # fmt: skip
    z = all_row["zone"]
    for pop in ("area", "units", "buildings"):
        print(f"every zone on duty, {pop:<10}" + "  ".join(
            f"{r} m {100 * s:5.1f}%" for r, s in z[pop].items()))  # fmt: skip
    doc = {
        "benchmark": "bench/coverage.py",
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
        },
        "runtime_s": time.perf_counter() - started,
        "results": result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
