"""The coverage map as a PNG: the area outline, a heat layer of the distance from each
grid cell to the nearest key zone team (every zone team on duty), the zone teams, the
worst-covered cells and the suggested new zone sites. For people (the README, the
console): English labels only, so no CJK font is needed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from engine.geo.distance import FloatArray
from engine.planning.grid import Grid
from engine.planning.network import Network

HEAT_CAP_M = 1500.0
"""Distances beyond this share the last colour (the largest coverage radius is 1 km)."""


def write_map(
    path: Path,
    grid: Grid,
    network: Network,
    d_cells: FloatArray,
    worst: list[int],
    sites: list[dict[str, Any]],
    title: str,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import BoundaryNorm, ListedColormap

    (lat0, lon0), (dlat, dlon) = grid.origin, grid.step_deg
    rows, cols = grid.shape
    extent = (lon0, lon0 + cols * dlon, lat0, lat0 + rows * dlat)
    aspect = 1.0 / math.cos(math.radians(lat0 + rows * dlat / 2))
    fig, ax = plt.subplots(figsize=(10, 8), dpi=110)
    try:
        bounds = [0, 300, 500, 1000, HEAT_CAP_M, 2 * HEAT_CAP_M]
        cmap = ListedColormap(["#1a9850", "#91cf60", "#fee08b", "#fc8d59", "#d73027"])
        img = ax.imshow(
            grid.raster(np.minimum(d_cells, 1.5 * HEAT_CAP_M)),
            origin="lower",
            extent=extent,
            cmap=cmap,
            norm=BoundaryNorm(bounds, cmap.N),
            interpolation="nearest",
            aspect=aspect,
        )
        outline = [*grid.area.outline, grid.area.outline[0]]
        ax.plot([p[0] for p in outline], [p[1] for p in outline], color="black", lw=1.2)
        on = sorted(network.zones_on_duty(None))
        ax.scatter(
            network.zones.lon[on], network.zones.lat[on], s=14, marker="^",
            c="#08306b", label=f"key zone team ({len(on)})", zorder=3,
        )  # fmt: skip
        ax.scatter(
            grid.lon[worst], grid.lat[worst], s=90, marker="x", c="black",
            linewidths=2, label="worst-covered cells", zorder=4,
        )  # fmt: skip
        for i, s in enumerate(sites):
            ax.scatter(
                [s["lon"]], [s["lat"]], s=260, marker="*", c="#e7298a", edgecolors="white",
                zorder=5, label="suggested new zone" if i == 0 else None,
            )  # fmt: skip
            ax.annotate(
                f"#{len(network.zone_ids) + s['rank']}: +{s['units_gained']} units",
                (s["lon"], s["lat"]), xytext=(8, 8 if i % 2 == 0 else -14),
                textcoords="offset points", fontsize=8, fontweight="bold",
            )  # fmt: skip
        bar = fig.colorbar(img, ax=ax, shrink=0.7, ticks=[150, 400, 750, 1250, 2250])
        bar.ax.set_yticklabels(["<300 m", "300-500 m", "500 m-1 km", "1-1.5 km", ">1.5 km"])
        bar.set_label("distance to the nearest key zone team")
        ax.set_xlabel("longitude")
        ax.set_ylabel("latitude")
        ax.set_title(title, fontsize=10)
        ax.legend(loc="lower left", fontsize=8, framealpha=0.9)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
