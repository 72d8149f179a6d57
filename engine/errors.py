"""The project's own exceptions. Library errors (aiokafka, pydantic, OSError) are mapped
to these at each layer boundary so callers handle one family, with a message a
command-centre operator can act on."""

from __future__ import annotations


class EngineError(Exception):
    """Base of every error the engine reports to a user. ``exit_code`` for the CLI."""

    exit_code = 1


class UsageError(EngineError):
    """Bad arguments or input from the user; nothing was done."""

    exit_code = 2


class ConfigError(EngineError):
    """A config or data file was refused; names the file, line and field."""

    exit_code = 2


class BrokerError(EngineError):
    """The local broker could not be fetched, started, stopped or reached."""


class KafkaUnavailable(EngineError):
    """No Kafka cluster answered at the configured bootstrap address."""


class TopicMismatch(EngineError):
    """A topic exists with settings other than the ones configured."""
