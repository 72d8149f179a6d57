"""Run `engine api` as a real process for tests, with tokens of each role."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from engine.api.tokens import TokenStore
from engine.config import Settings
from tests.kafka_broker import free_port

READY = "api ready"


class ApiProcess:
    def __init__(self, settings: Settings, log: Path, **env: str) -> None:
        self.settings = settings
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.tokens: dict[str, str] = {}
        store = TokenStore(settings.tokens_path)
        for role in ("viewer", "operator", "admin"):
            self.tokens[role] = store.create(role, f"test-{role}")[1]

    def token(self, role: str, name: str) -> str:
        return TokenStore(self.settings.tokens_path).create(role, name)[1]

    def start(self, timeout: float = 60.0) -> None:
        env = {
            **os.environ,
            "ENGINE_KAFKA_BOOTSTRAP": self.settings.kafka_bootstrap,
            "ENGINE_TOPIC_PREFIX": self.settings.topic_prefix,
            "ENGINE_PARTITIONS": str(self.settings.partitions),
            "ENGINE_DATA_DIR": str(self.settings.data_dir),
            **self.env,
        }
        args = [sys.executable, "-m", "engine.cli", "api", "--port", str(self.port)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"engine api exited {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"engine api not ready in {timeout} s:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def client(self, role: str | None = "operator", token: str | None = None) -> httpx.Client:
        headers = {}
        secret = token or (self.tokens[role] if role else None)
        if secret:
            headers["Authorization"] = f"Bearer {secret}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def wait_for(self, path: str, done: Any, timeout: float = 30.0, role: str = "viewer") -> Any:
        """GET ``path`` until ``done(json)`` holds; the last body otherwise (asserted)."""
        deadline = time.monotonic() + timeout
        body: Any = None
        with self.client(role) as c:
            while time.monotonic() < deadline:
                r = c.get(path)
                if r.status_code == 200:
                    body = r.json()
                    if done(body):
                        return body
                time.sleep(0.2)
        raise AssertionError(f"{path}: condition not met in {timeout} s; last: {body}")
