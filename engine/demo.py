"""`engine demo`: the main job on the embedded default, end to end, in one terminal.

Uses the local Kafka broker (started here if nothing answers at its address, and then
stopped at the end), and plays the default scenario (``scenarios/tangxia-afternoon.yaml``)
with the scenario runner: the handset simulator on a pty answering as the Tangxia
registry's handsets and phones, the radio gateway, the worker and the operators' API with
its console (the URL and a fresh operator token are printed), one line per change as it
plays, then the summary against NFPA 1225 (also written to ``<data dir>/demo/``). The
run's topics are its own (a fresh prefix, deleted at the end), so no zone is held by an
earlier run's incidents. Then everything keeps running for the operator until Ctrl-C;
with ``--once`` it stops at once.
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

from engine.config import Settings
from engine.errors import EngineError
from engine.scenario.model import load_scenario
from engine.scenario.runner import run_scenario

DEFAULT_SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "tangxia-afternoon.yaml"


def run_demo(settings: Settings, *, once: bool, scenario: Path | None = None) -> int:
    from engine.broker.local import LocalBroker

    broker = LocalBroker(settings)
    started = False
    if not _answers(settings.kafka_bootstrap):
        if settings.kafka_bootstrap != broker.bootstrap:
            raise EngineError(f"no Kafka answers at {settings.kafka_bootstrap}")
        started, message = broker.start()
        print(message)
    try:
        out = settings.data_dir / "demo"
        out.mkdir(parents=True, exist_ok=True)
        run_scenario(
            settings,
            load_scenario(scenario or DEFAULT_SCENARIO),
            port=settings.api_port,
            json_out=out / "summary.json",
            plot_out=out / "summary.png",
            linger=not once,
        )
    except KeyboardInterrupt:  # Ctrl-C before the summary: everything is stopped all the same
        print("interrupted; the processes are stopped")
        return 130
    finally:
        if started:
            _, message = broker.stop()
            print(f"{message} (the demo started it)")
    print("demo finished")
    return 0


def _answers(bootstrap: str) -> bool:
    """Something listens at the first bootstrap address (the runner then talks Kafka)."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    with contextlib.suppress(OSError, ValueError), socket.create_connection((host, int(port)), 2):
        return True
    return False
