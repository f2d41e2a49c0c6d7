"""The `baton` command line."""

from __future__ import annotations

import argparse

from . import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="baton", description="Baton orchestrator")
    parser.add_argument("--version", action="version", version=f"baton {__version__}")
    parser.parse_args(argv)
    parser.print_help()
    return 0
