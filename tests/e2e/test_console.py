"""The web console in headless Chromium (Debian's package, driven by Playwright through
``executable_path``) against the whole stack: broker, worker, handset simulator on a
pty, radio gateway, API. An operator raises an incident through the form, sees its
decision and a handset's accept arrive on the board without a reload, presses
"escalate" and sees stage 2 called. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.config import DEFAULT_REGISTRY, Settings
from tests.api_process import ApiProcess
from tests.kafka_broker import SessionBroker
from tests.worker_process import WorkerProcess, write_plan

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


class Proc:
    def __init__(self, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "engine.cli", *args],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text(errors="replace")[-2000:]
            if text in self.log.read_text(errors="replace"):
                return
            time.sleep(0.1)
        raise TimeoutError(f"{text!r} not in {self.log}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def stack(kafka: SessionBroker, tmp_path: Path) -> Iterator[ApiProcess]:
    import asyncio

    from engine.kafka.topics import ensure_topics

    settings = Settings(
        kafka_bootstrap=kafka.bootstrap,
        topic_prefix=f"t-{uuid.uuid4().hex[:10]}-",
        partitions=2,
        data_dir=tmp_path,
    )
    assert asyncio.run(ensure_topics(settings)).ok
    env = {
        **os.environ,
        "ENGINE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ENGINE_TOPIC_PREFIX": settings.topic_prefix,
        "ENGINE_PARTITIONS": "2",
        "ENGINE_DATA_DIR": str(tmp_path),
    }
    link = tmp_path / "ttyUSB0"
    procs: list[Proc] = []
    worker = WorkerProcess(settings, tmp_path / "worker.log", plan=write_plan(tmp_path, 600))
    api = ApiProcess(settings, tmp_path / "api.log")
    try:
        sim = Proc(
            ["simulate", "handsets", "--registry", str(DEFAULT_REGISTRY), "--reply", "accept",
             "--reply-delay", "4", "--on-scene-after", "600", "--link", str(link)],
            tmp_path / "simulator.log", env,
        )  # fmt: skip
        procs.append(sim)
        sim.wait_for(str(link), 30)
        gateway = Proc(
            ["gateway", "--device", str(link), "--registry", str(DEFAULT_REGISTRY),
             "--metrics-port", "0"],
            tmp_path / "gateway.log", env,
        )  # fmt: skip
        procs.append(gateway)
        worker.start()
        api.start()
        yield api
    finally:
        api.stop()
        worker.stop()
        for p in reversed(procs):
            p.stop()


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (make sysdeps)")
def test_raise_watch_and_escalate_in_the_browser(stack: ApiProcess) -> None:
    from playwright.sync_api import expect, sync_playwright

    api = stack
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{api.url}/console/")
        page.fill("#token", api.tokens["operator"])
        page.click("#login-form button[type=submit]")
        expect(page.locator("#who")).to_contain_text("test-operator (operator)")
        expect(page.locator("#live")).to_have_class("live on")

        # raise through the form, the location picked on the map
        page.click("header nav a[href='#/new']")
        page.select_option("#f-type", "fire")
        page.select_option("#f-priority", "P1")
        box = page.locator("#new-map").bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        expect(page.locator("#f-lat")).not_to_have_value("")
        page.fill("#f-lat", "22.803100")
        page.fill("#f-lon", "114.084200")
        page.fill("#f-address", "塘厦镇林村新围路12号")
        page.fill("#f-description", "三楼民房冒烟")
        page.click("#f-submit")
        page.wait_for_url("**/console/#/incident/INC-*")
        incident_id = page.url.rsplit("/", 1)[-1]

        # the decision, then a handset's accept, arrive without a reload
        expect(page.locator("#inc-head")).to_contain_text("KZ", timeout=20_000)
        expect(page.locator("#inc-grid .cell.key_zone")).to_have_count(1)
        expect(page.locator("#inc-grid .cell.accepted").first).to_be_visible(timeout=40_000)
        page.click("header nav a[href='#/board']")
        card = page.locator(f"#board .card[data-id='{incident_id}']")
        expect(card).to_be_visible()
        expect(card.locator(".cell.accepted").first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "console-board.png"))

        # escalate: stage 2 (index 1) is called
        card.click()
        page.click("#inc-commands button[data-cmd=escalate]")
        expect(page.locator("#inc-result")).to_contain_text("stage 1", timeout=20_000)
        expect(page.locator("#inc-decisions")).to_contain_text("escalated by test-operator")
        expect(page.locator("#inc-grid .cell.key_zone")).to_have_count(2)
        page.wait_for_timeout(500)  # the map's lines
        page.screenshot(path=str(ARTIFACTS / "console-incident.png"))

        # English labels with the toggle
        page.click("#lang")
        expect(page.locator("#inc-commands button[data-cmd=escalate]")).to_have_text("Escalate")
        expect(page.locator("#live")).to_have_text("live")  # translated, still connected
        page.click("header nav a[href='#/audit']")
        expect(page.locator("#audit-table tbody")).to_contain_text("escalate")
        page.screenshot(path=str(ARTIFACTS / "console-audit.png"))
        browser.close()
    assert errors == []
