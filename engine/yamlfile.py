"""A YAML file read into a pydantic model, or ConfigError naming the file, line, column
and field of every problem (plans, scenarios)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from engine.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def parse_yaml(model: type[M], data: bytes, origin: str, what: str, shape: str) -> M:
    """``data`` (UTF-8 YAML from ``origin``) as ``model``; ``what`` names the file kind
    in messages, ``shape`` says what its top level must be."""
    try:
        text = data.decode("utf-8-sig")
        raw = yaml.safe_load(text)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{origin}: {what} is not UTF-8: {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{origin}{where}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}:1:1: a {what} is {shape}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        # the node tree (line and column of each field) only to report: a second parse
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        lines = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            line, col = position(node, loc)
            path = ".".join(str(p) for p in loc) or f"({what})"
            lines.append(f"{origin}:{line}:{col}: {path}: {err['msg']}")
        raise ConfigError(f"{what} refused:\n  " + "\n  ".join(lines)) from exc


def position(node: yaml.Node | None, loc: Sequence[str | int]) -> tuple[int, int]:
    """Line and column (1-based) of the deepest YAML node on ``loc`` that exists."""
    best = node
    for part in loc:
        if isinstance(best, yaml.MappingNode) and isinstance(part, str):
            nxt = next((v for k, v in best.value if getattr(k, "value", None) == part), None)
        elif isinstance(best, yaml.SequenceNode) and isinstance(part, int):
            nxt = best.value[part] if 0 <= part < len(best.value) else None
        else:
            nxt = None
        if nxt is None:
            break
        best = nxt
    if best is None:
        return 1, 1
    return best.start_mark.line + 1, best.start_mark.column + 1
