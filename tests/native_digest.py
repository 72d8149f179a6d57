"""Digest of many decisions and escalations, for comparing the mypyc-compiled rules
modules with their source (tests/unit/test_rules_native.py runs this twice).

    python tests/native_digest.py [--source] N

``--source`` loads engine.rules.{decide,nearby,availability} from their ``.py`` files
even where compiled extensions sit beside them. Prints which ran, then the digest.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import random
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
from compile_rules import MODULES as HOT  # noqa: E402  (the compiled modules)


class _SourceFirst(importlib.abc.MetaPathFinder):
    """Finds the hot modules as source files, ahead of the extension modules."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package == "engine.rules" and name in HOT:
            return importlib.util.spec_from_file_location(
                fullname, REPO / "engine" / "rules" / f"{name}.py"
            )
        return None


def main(argv: list[str]) -> int:
    if "--source" in argv:
        sys.meta_path.insert(0, _SourceFirst())
    n = int(argv[-1])
    sys.path.insert(0, str(REPO / "bench"))
    import rules as bench  # type: ignore[import-not-found]

    from engine.config import DEFAULT_REGISTRY
    from engine.geo.areas import AREA_FILE, load_area
    from engine.registry.registry import load_registry
    from engine.rules import decide as D
    from engine.rules.plan import load_plan
    from engine.rules.world import World

    TANGXIA = load_area(DEFAULT_REGISTRY / AREA_FILE)

    world = World.build(load_registry(REPO / "data" / "tangxia"))
    plan = load_plan()
    incidents = bench.incidents_in(random.Random(11), n, TANGXIA.bbox(), TANGXIA.contains)
    now = bench.BASE + timedelta(hours=8, minutes=30)
    availability = bench.availability_for(random.Random(5), world.registry, now)
    digest = hashlib.sha256()
    for incident in incidents:
        decisions = [D.decide(incident, world, availability, plan, incident.raised_at)]
        while True:
            try:
                later = incident.raised_at + timedelta(minutes=len(decisions))
                decisions.append(D.escalate(incident, world, availability, plan, later, decisions))
            except D.NoStageLeft:
                break
        for d in decisions:
            digest.update(d.to_json().encode("utf-8"))
    print(Path(D.__file__ or "").name)
    print(digest.hexdigest())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
