"""What every command module shares."""

from __future__ import annotations


class UsageError(Exception):
    """A command-line mistake: printed without a traceback, exit status 2."""


def _human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
