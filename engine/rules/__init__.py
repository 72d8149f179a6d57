"""Pure dispatch decisions (DESIGN.md §3): no Kafka, no asyncio, no serial.

Input: an incident, the registry (as a :class:`~engine.rules.world.World`), current
availability and the response plan. Output: a Decision with reasons, deterministic so
that decisions can be replayed from the Kafka log.
"""
