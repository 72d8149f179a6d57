"""deploy/prometheus: the config, recording and alert rules pass promtool, every alert
has a promtool unit test that shows it firing, and the rules read only metrics the
code exports (so a renamed metric breaks the build, not the pager)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.prom_helpers import (
    PROMETHEUS_DIR,
    RULE_FILES,
    exported_series_names,
    promql_metric_names,
    promtool,
    recording_rule_names,
    run,
)

pytestmark = pytest.mark.unit

TEST_FILES = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))


def _rules() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            out.extend(group["rules"])
    return out


def _alerts() -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for r in _rules() if "alert" in r}


def test_promtool_check_config() -> None:
    code, out = run(promtool(), "check", "config", "prometheus.yml", cwd=PROMETHEUS_DIR)
    assert code == 0, out
    for name in ("engine-recording.yml", "engine-alerts.yml"):
        assert name in out  # the config really loads the rule files


def test_scrape_jobs_and_ports() -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["worker"]["dns_sd_configs"][0]["port"] == 9101
    assert jobs["gateway"]["static_configs"][0]["targets"] == ["gateway:9102"]
    assert jobs["api"]["static_configs"][0]["targets"] == ["api:8080"]
    loaded = {(PROMETHEUS_DIR / f).resolve() for f in config["rule_files"]}
    assert loaded == {p.resolve() for p in RULE_FILES}


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(path: Path) -> None:
    code, out = run(promtool(), "check", "rules", str(path))
    assert code == 0, out
    assert "SUCCESS" in out


def test_promtool_test_rules() -> None:
    assert TEST_FILES
    code, out = run(
        promtool(), "test", "rules", *[p.name for p in TEST_FILES], cwd=TEST_FILES[0].parent
    )
    assert code == 0, out
    assert "FAILED" not in out


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = set(_alerts())
    assert alerts - fired == set(), "alerts never shown firing in deploy/prometheus/tests"
    assert fired - alerts == set(), "tests name alerts that do not exist"
    # most alerts also have a case where they must stay quiet
    assert len(quiet & alerts) >= len(alerts) * 3 // 4


def test_alerts_have_severity_summary_and_description() -> None:
    for name, rule in _alerts().items():
        assert rule["labels"]["severity"] in {"page", "ticket"}, name
        assert rule["annotations"]["summary"], name
        assert len(rule["annotations"]["description"]) > 40, name


def test_rules_read_only_exported_metrics() -> None:
    exported = set(exported_series_names())
    recorded = recording_rule_names()
    for rule in _rules():
        names = promql_metric_names(rule["expr"])
        unknown = names - exported - recorded
        assert not unknown, f"{rule.get('record') or rule.get('alert')}: {unknown}"


def test_promql_lexer() -> None:
    expr = (
        'sum by (area, le) (rate(engine_x_bucket{le=~"5(\\\\.0)?", a="by(x)"}[5m] offset 1h))'
        " / on (area) group_left slo:ratio:rate5m > bool 0.5e3 and absent(up == 1)"
    )
    assert promql_metric_names(expr) == {"engine_x_bucket", "slo:ratio:rate5m", "up"}
