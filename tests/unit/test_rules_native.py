"""The mypyc-compiled rules modules decide exactly what their source decides."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def _digest(*args: str) -> tuple[str, str]:
    out = subprocess.run(
        [sys.executable, str(REPO / "tests" / "native_digest.py"), *args],
        capture_output=True, text=True, timeout=600, check=True, cwd=REPO,
    ).stdout.split()  # fmt: skip
    return out[0], out[1]


def test_compiled_and_source_give_byte_identical_decisions() -> None:
    if not list((REPO / "engine" / "rules").glob("decide.*.so")):
        pytest.skip("rules not compiled (make native): the source is what runs")
    compiled_file, compiled = _digest("1500")
    source_file, source = _digest("--source", "1500")
    assert compiled_file.endswith(".so") and source_file == "decide.py"
    assert compiled == source
