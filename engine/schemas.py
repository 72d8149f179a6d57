"""JSON Schema of every topic value, exported to ``schemas/`` and checked in, so other
clients of the topics can validate against the same contract."""

from __future__ import annotations

import json
from pathlib import Path

from engine.models import TOPIC_MODELS, Record
from engine.rules.plan import plan_json_schema


def rendered_schemas() -> dict[str, str]:
    """File name -> schema text (stable: sorted keys, trailing newline)."""
    out = {}
    from engine.broadcast.model import Cancel, Message, Notice

    broadcast: dict[str, type[Record]] = {
        "broadcast-messages": Message,
        "broadcasts.notice": Notice,  # `broadcasts` also holds cancels, reports, replies
        "broadcasts.cancel": Cancel,
    }
    for name, model in {**TOPIC_MODELS, **broadcast}.items():
        topic = name.split(".")[0]
        schema = model.model_json_schema(mode="validation")
        schema["$id"] = f"https://tangxia-engine.invalid/schemas/{name}.schema.json"
        schema["x-kafka-topic"] = topic
        out[f"{name}.schema.json"] = (
            json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
        )
    plan = plan_json_schema()
    out["plan.schema.json"] = json.dumps(plan, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    return out


def export(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered_schemas().items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale(out_dir: Path) -> list[str]:
    """Schema files that are missing or differ from the models."""
    problems = []
    for name, text in rendered_schemas().items():
        path = out_dir / name
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path}: differs from the models")
    return problems
