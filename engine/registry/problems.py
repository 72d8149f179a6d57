"""Problems found in registry files, each pinned to a file, a line or feature, a field."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"  # the registry is refused
    WARNING = "warning"  # printed; the registry is still used


@dataclass(frozen=True, slots=True)
class Where:
    """A place in a registry file: a CSV line, or a GeoJSON feature (index and, when the
    file is laid out one feature per line as generated, its line)."""

    file: str
    line: int | None = None
    feature: int | None = None
    entity_id: str | None = None

    def __str__(self) -> str:
        text = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.feature is not None:
            text += f": feature {self.feature}"
        if self.entity_id:
            text += f" ({self.entity_id})"
        return text


@dataclass(frozen=True, slots=True)
class Problem:
    where: Where
    field: str | None
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        field = f" {self.field}:" if self.field else ""
        return f"{self.severity}: {self.where}:{field} {self.message}"


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity is Severity.ERROR]
