"""Responders registry: zones, units, volunteers, radios (issue 3).

Load one with ``engine.registry.registry.load_registry(path)``; the file layout is
described in ``engine.registry.files`` and the entities in ``engine.registry.models``.
"""
