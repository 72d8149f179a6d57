from __future__ import annotations

import pytest

from engine.config import ALL_TOPICS, Settings
from engine.kafka.topics import DAY_MS, ExistingTopic, compare, wanted_topics

pytestmark = pytest.mark.unit


def _as_existing(settings: Settings) -> dict[str, ExistingTopic]:
    return {
        s.name: ExistingTopic(s.name, s.partitions, s.replication_factor, dict(s.configs))
        for s in wanted_topics(settings)
    }


def test_every_design_topic_with_its_settings() -> None:
    specs = {s.logical: s for s in wanted_topics(Settings(topic_partitions={"incidents": 32}))}
    assert set(specs) == set(ALL_TOPICS)
    assert specs["incident-state"].configs["cleanup.policy"] == "compact"
    assert specs["incidents"].partitions == 32
    assert specs["area-events"].partitions == 32  # co-partitioned with incidents
    for audit in ("incidents", "decisions", "acks"):
        assert int(specs[audit].configs["retention.ms"]) >= 30 * DAY_MS
        assert specs[audit].configs["cleanup.policy"] == "delete"


def test_retention_below_thirty_days_is_refused() -> None:
    with pytest.raises(ValueError, match="greater than or equal to 30"):
        Settings(retention_days=7)


def test_nothing_to_do_when_all_match() -> None:
    s = Settings()
    to_create, unchanged, mismatched = compare(wanted_topics(s), _as_existing(s))
    assert (to_create, mismatched) == ([], {})
    assert len(unchanged) == len(ALL_TOPICS)


def test_missing_topics_are_created() -> None:
    s = Settings()
    existing = _as_existing(s)
    del existing["acks"]
    to_create, _, _ = compare(wanted_topics(s), existing)
    assert [t.name for t in to_create] == ["acks"]


def test_different_settings_are_reported_not_accepted() -> None:
    s = Settings()
    existing = _as_existing(s)
    existing["incidents"] = ExistingTopic("incidents", 3, 1, {"cleanup.policy": "compact"})
    to_create, unchanged, mismatched = compare(wanted_topics(s), existing)
    assert to_create == []
    assert "incidents" not in unchanged
    diffs = mismatched["incidents"]
    assert "partitions 3, configured 6" in diffs
    assert "cleanup.policy=compact, configured delete" in diffs
    assert any(d.startswith("retention.ms=None") for d in diffs)


def test_prefix_applies_to_every_topic() -> None:
    names = {s.name for s in wanted_topics(Settings(topic_prefix="tx."))}
    assert names == {f"tx.{name}" for _, name in Settings().topics.items()}
    assert "tx.engine-area-events" in names
