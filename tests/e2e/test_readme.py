"""Every command in the README's shell blocks is run by a test: here, as written (run in
a scratch directory beside the repository's `.venv` and `scenarios/`, against the test
broker), or by the test named for it. A command added to the README without a test
fails here."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.test_demo import processes_mentioning
from tests.kafka_broker import SessionBroker, free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PLACEHOLDER_BOOTSTRAP = "kafka-1.example:9092"
"""the README's example cluster: the test broker stands in for it"""

ELSEWHERE = {
    "make test": "CI: .ci/run runs it (checked below)",
    "make demo DEMO_ONCE=1": "tests/e2e/test_demo.py",
}


def readme_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_the_readme_has_the_two_commands_and_points_nowhere_outside() -> None:
    text = README.read_text(encoding="utf-8")
    commands = readme_commands()
    assert commands[:2] == ["make demo", "make test"]
    assert len(text.splitlines()) <= 150
    for target in re.findall(r"\]\(([^)#]+)", text):
        assert not target.startswith(("/", "..", "http")), target
        assert (ROOT / target).exists(), f"README links {target}, which does not exist"
    assert "exec make test" in (ROOT / ".ci" / "run").read_text()


@pytest.fixture
def scratch(tmp_path: Path, kafka: SessionBroker) -> tuple[Path, dict[str, str]]:
    for name in (".venv", "scenarios"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = {**os.environ, "ENGINE_KAFKA_BOOTSTRAP": kafka.bootstrap,
           "ENGINE_DATA_DIR": str(tmp_path / "data"), "ENGINE_TOPIC_PREFIX": "t-readme-",
           "ENGINE_API_PORT": str(free_port())}  # fmt: skip
    return tmp_path, env


def _sh(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def test_every_readme_command_runs(scratch: tuple[Path, dict[str, str]]) -> None:
    cwd, env = scratch
    ran = []
    for command in readme_commands():
        if command in ELSEWHERE or command == "make demo":
            continue  # make demo: test_make_demo_stops_everything_on_ctrl_c
        done = _sh(command.replace(PLACEHOLDER_BOOTSTRAP, env["ENGINE_KAFKA_BOOTSTRAP"]), cwd, env)
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        ran.append(command)
        if "scenario run scenarios/shop-theft.yaml" in command:
            summary = json.loads((cwd / "theft.json").read_text())
            [theft] = summary["incidents"]
            assert theft["name"] == "theft" and theft["state"] == "closed"
            assert theft["quorum_met"] is True
            assert (cwd / "theft.png").read_bytes()[:4] == b"\x89PNG"
        if "scenario check" in command:
            assert "200 incidents" in done.stdout
        if "topics ensure" in command:
            assert "t-readme-incidents" in done.stdout + done.stderr
    assert len(ran) >= 3, ran


def test_make_demo_stops_everything_on_ctrl_c(tmp_path: Path, kafka: SessionBroker) -> None:
    """`make demo`, then Ctrl-C (SIGINT to the terminal's process group) once it plays:
    every process it started stops. (The broker it starts and stops when none answers:
    tests/e2e/test_demo.py; here the test broker answers, and is left alone.)"""
    env = {**os.environ, "ENGINE_DATA_DIR": str(tmp_path),
           "ENGINE_KAFKA_BOOTSTRAP": kafka.bootstrap, "ENGINE_API_PORT": str(free_port()),
           "PYTHONUNBUFFERED": "1"}  # fmt: skip
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        # a session of its own: the SIGINT below reaches make and the demo, as Ctrl-C would
        make = subprocess.Popen(["make", "--no-print-directory", "demo"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 240
    while "console: http" not in log.read_text() and make.poll() is None:
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.5)
    os.killpg(make.pid, signal.SIGINT)
    make.wait(timeout=120)
    text = log.read_text()
    assert "interrupted; the processes are stopped" in text, text[-3000:]
    assert "the demo started it" not in text  # not its broker
    left = processes_mentioning(str(tmp_path), f"ENGINE_API_PORT={env['ENGINE_API_PORT']}\0")
    assert left == set(), f"processes left running: {left}"
