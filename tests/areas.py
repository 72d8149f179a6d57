"""The shipped sample area, for tests and benchmarks that place points in Tangxia."""

from __future__ import annotations

from engine.config import DEFAULT_REGISTRY
from engine.geo.areas import AREA_FILE, load_area

TANGXIA = load_area(DEFAULT_REGISTRY / AREA_FILE)
