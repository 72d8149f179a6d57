"""Radio gateway, serial/protocol half (DESIGN.md §5).

Layers, bottom up:

- ``framing``: bytes -> lines and the SMS ``> `` prompt (no I/O).
- ``at_connection``: the sans-IO AT engine; ``at_state`` holds its transition table.
- ``sms``, ``ucs2``, ``replies``, ``callout_text``, ``poc``: message formats and dialects.
- ``transport``: the thin asyncio driver over ``serial_asyncio_fast``.
- ``simulator``: a modem with handsets over a pty or TCP, for tests and the demo.
"""
