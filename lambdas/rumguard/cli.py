"""The ``rumguard`` command line: the demo, the benchmark and (later) replay and the operator commands.

Each subcommand lives in its own module with ``add_arguments(parser)`` and ``run(args) -> int``; this file
only registers them, so the Lambda layer never imports the command line's dependencies.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "rumguard.local.demo",
        "RUM Guard on the embedded AWS: the real web client (if Chromium), bots, blocks, alarms, notifications",
    ),
    "bench": ("rumguard.bench", "measure ingest throughput against the decode ceiling, and memory per batch"),
    "replay": ("rumguard.replay", "dry-run the rules over a RUM log export: who would have been blocked, and why"),
    "dashboard": ("rumguard.dashboard", "print the CloudWatch dashboard body that template.yaml embeds"),
    "local": ("rumguard.local.stack", "serve the embedded AWS on localhost for `chalice local` and the CLI"),
    "blocks": ("rumguard.operator_cli", "list, show, add and remove blocks through the operator API"),
    "allow": ("rumguard.operator_cli", "add, remove and show allowlist entries through the operator API"),
    "lockdown": ("rumguard.operator_cli", "turn the guest lockdown on or off through the operator API"),
    "openapi": ("rumguard.operator_cli", "write docs/openapi.json from the operator API (--check: fail on drift)"),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(prog="rumguard", description="RUM Guard for Amazon CloudWatch RUM.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        module = importlib.import_module(module_name)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rumguard`` script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
