"""Pure geometry: dispatch areas, great-circle distance, spatial indexes. No I/O."""
