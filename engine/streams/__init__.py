"""The stream worker: Kafka topics adapted to the pure rules (DESIGN.md §3), exactly once
per batch on Kafka transactions. No dispatch logic lives here; see engine/rules."""
