"""Where the worker's registries and plan come from, and their reload: a changed file is
swapped in once it validates; a bad one is refused and the running one stays."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ConfigError
from engine.metrics import WorkerMetrics
from engine.registry.registry import load_registry
from engine.rules.plan import LoadedPlan, load_plan
from engine.rules.world import World

log = logging.getLogger(__name__)


@dataclass
class Sources:
    """Where the registry and plan come from, for reloads."""

    registries: list[Path]
    plan: Path | None


def load_worlds(registries: list[Path]) -> dict[str, World]:
    """Area id -> World for each registry directory (ConfigError if one is invalid)."""
    worlds: dict[str, World] = {}
    for path in registries:
        registry = load_registry(path)
        area = registry.area
        if area is None:
            raise ConfigError(f"registry {path}: registry.json must name its dispatch area")
        if area in worlds:
            raise ConfigError(f"registry {path}: area {area!r} is loaded twice")
        worlds[area] = World.build(registry)
    return worlds


class SourceWatch:
    """The loaded worlds and plan, and the modification times they were loaded at."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self.worlds = load_worlds(sources.registries)
        self.plan = load_plan(sources.plan)
        self._stamps = {what: self._mtime(what) for what in ("plan", "registry")}

    def _paths(self, what: str) -> list[Path]:
        if what == "plan":
            return [self.sources.plan] if self.sources.plan else []
        return self.sources.registries

    def _mtime(self, what: str) -> float:
        return max((mtime(p) for p in self._paths(what)), default=0.0)

    async def reload(self, metrics: WorkerMetrics) -> bool:
        """Reload what changed on disk; True if something new is in use."""
        changed = False
        for what in ("plan", "registry"):
            stamp = self._mtime(what)
            if not self._paths(what) or self._stamps.get(what) == stamp:
                continue
            self._stamps[what] = stamp
            counter = metrics.plan_reloads if what == "plan" else metrics.registry_reloads
            try:
                if what == "plan":
                    plan: LoadedPlan = await asyncio.to_thread(load_plan, self.sources.plan)
                    self.plan = plan
                    log.warning("plan reloaded: %s", plan.version)
                else:
                    worlds = await asyncio.to_thread(load_worlds, self.sources.registries)
                    self.worlds = worlds
                    log.warning("registry reloaded: %s", ", ".join(sorted(worlds)))
            except ConfigError as exc:
                counter.labels(result="error").inc()
                log.error("%s reload refused, the running one stays: %s", what, exc)
                continue
            counter.labels(result="ok").inc()
            changed = True
        return changed


def mtime(path: Path) -> float:
    """Newest modification time of a file or of the files in a directory."""
    try:
        if path.is_dir():
            return max((p.stat().st_mtime for p in path.iterdir()), default=0.0)
        return path.stat().st_mtime
    except OSError:
        return 0.0


__all__ = ["SourceWatch", "Sources", "load_worlds"]
