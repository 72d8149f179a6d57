"""Pure dispatch decisions (DESIGN.md §3): no Kafka, no asyncio, no serial.

Input: an incident, the registry (as a :class:`~engine.rules.world.World`), current
availability and the response plan. Output: a Decision with reasons, deterministic so
that decisions can be replayed from the Kafka log.

The hot modules (decide, nearby, availability) may be compiled in place by mypyc
(tools/compile_rules.py, `make native`); a compiled module older than its source would
silently run old code, so importing the package from a source checkout refuses it.
"""

from pathlib import Path


def _refuse_stale_native() -> None:
    here = Path(__file__).parent
    if not (here.parents[1] / "pyproject.toml").exists():
        return  # installed (a wheel sets no meaningful times): only a checkout is edited
    for native in here.glob("*.so"):
        source = here / (native.name.split(".")[0] + ".py")
        if source.exists() and source.stat().st_mtime > native.stat().st_mtime:
            raise ImportError(
                f"{native} was compiled before {source.name} last changed: rebuild it "
                "(make native) or delete engine/rules/*.so to run the source"
            )


_refuse_stale_native()
