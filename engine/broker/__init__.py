"""A real single-node Apache Kafka broker (KRaft combined mode) on loopback, for the
demo, the tests and a developer's machine. Production uses an existing cluster."""
