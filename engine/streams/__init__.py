"""The stream worker (faust): Kafka topics adapted to the pure rules (DESIGN.md §3).
No dispatch logic lives here; see engine/rules."""
