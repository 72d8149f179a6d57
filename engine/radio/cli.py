"""`engine gateway`, `engine radio ...`, `engine simulate handsets` (placeholder)."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Registers nothing yet."""
