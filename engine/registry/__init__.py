"""Responders registry: zones, units, volunteers, radios (issue 3)."""
