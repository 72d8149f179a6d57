"""`engine registry ...` commands (placeholder until the registry lands)."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Registers nothing yet."""
