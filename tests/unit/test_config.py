from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from engine.config import LOGICAL_TOPICS, Settings, load_settings
from engine.errors import ConfigError

pytestmark = pytest.mark.unit

SASL_TOML = """\
retention_days = 45
topic_partitions = {incidents = 32}

[kafka]
bootstrap = "kafka-1.dg:9093,kafka-2.dg:9093"
security_protocol = "SASL_SSL"
sasl_mechanism = "SCRAM-SHA-512"
sasl_username = "engine"
sasl_password = "s3cret-pw"

[topics]
incidents = "dg.incidents"
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("ENGINE_"):
            monkeypatch.delenv(key)


def test_defaults_match_design() -> None:
    s = load_settings()
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.broker_port == 9092
    assert s.broker_controller_port == 9093
    assert s.metrics_port == 9101
    assert [s.topic(t) for t in LOGICAL_TOPICS] == list(LOGICAL_TOPICS)


def test_toml_file_with_tables_is_flattened(tmp_path: Path) -> None:
    path = tmp_path / "engine.toml"
    path.write_text(SASL_TOML, encoding="utf-8")
    s = load_settings(path)
    assert s.kafka_bootstrap == "kafka-1.dg:9093,kafka-2.dg:9093"
    assert s.kafka_security_protocol == "SASL_SSL"
    assert isinstance(s.kafka_sasl_password, SecretStr)
    assert s.kafka_sasl_password.get_secret_value() == "s3cret-pw"
    assert s.topic("incidents") == "dg.incidents"
    assert s.partitions_of("incidents") == 32
    assert s.partitions_of("acks") == 6
    assert s.retention_days == 45


def test_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "engine.yaml"
    path.write_text(
        "kafka:\n  bootstrap: broker:9092\ntopic_prefix: tx.\nmetrics_port: 9200\n",
        encoding="utf-8",
    )
    s = load_settings(path)
    assert (s.kafka_bootstrap, s.topic("acks"), s.metrics_port) == ("broker:9092", "tx.acks", 9200)


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "engine.toml"
    path.write_text(SASL_TOML, encoding="utf-8")
    monkeypatch.setenv("ENGINE_KAFKA_BOOTSTRAP", "10.1.1.1:9092")
    monkeypatch.setenv("ENGINE_TOPICS__ACKS", "dg.acks")
    s = load_settings(path)
    assert s.kafka_bootstrap == "10.1.1.1:9092"
    assert s.topic("acks") == "dg.acks"
    assert s.topic("incidents") == "dg.incidents"  # still from the file


def test_secret_never_printed(tmp_path: Path) -> None:
    path = tmp_path / "engine.toml"
    path.write_text(SASL_TOML, encoding="utf-8")
    s = load_settings(path)
    for text in (repr(s), str(s), str(s.redacted()), s.model_dump_json()):
        assert "s3cret-pw" not in text
    assert s.redacted()["kafka_sasl_password"] == "**********"


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(ValueError, match="frozen"):
        s.kafka_bootstrap = "x:1"  # type: ignore[misc]


def test_bad_value_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "engine.toml"
    path.write_text('[kafka]\nbootstrap = "b:9092"\nsecurity_protocol = "TLS"\n', "utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    message = str(err.value)
    assert f"{path}:3:" in message
    assert "kafka_security_protocol" in message


def test_unknown_setting_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "engine.yaml"
    path.write_text("metrics_port: 9101\nbootstrap_servers: x:1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"{path}:2: bootstrap_servers: Extra inputs"):
        load_settings(path)


def test_sasl_without_credentials_is_refused() -> None:
    with pytest.raises(ConfigError, match="SASL"):
        load_settings(kafka_security_protocol="SASL_SSL")


def test_broken_toml_syntax_reports_position(tmp_path: Path) -> None:
    path = tmp_path / "engine.toml"
    path.write_text("[kafka\nbootstrap = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"not valid TOML.*line 1"):
        load_settings(path)


def test_broken_yaml_syntax_reports_line(tmp_path: Path) -> None:
    path = tmp_path / "engine.yaml"
    path.write_text("kafka:\n  bootstrap: [x\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"{path}:\d+:\d+: not valid YAML"):
        load_settings(path)


def test_unknown_topic_in_partition_overrides() -> None:
    with pytest.raises(ConfigError, match="unknown topics"):
        load_settings(topic_partitions={"incidentz": 3})


def test_missing_file_and_wrong_suffix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "nope.toml")
    ini = tmp_path / "engine.ini"
    ini.write_text("x=1", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\.toml, \.yaml or \.yml"):
        load_settings(ini)
