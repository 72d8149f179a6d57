"""Thin Kafka adapters (aiokafka): connection settings, admin, produce, tail.

Nothing here decides anything about dispatch; see engine/rules for that."""
