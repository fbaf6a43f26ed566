"""The `localazure` command: the local Azure stand-in's verbs, apart from the product's `remediation`.

    localazure demo                  the remediator end to end against the stand-in (`make demo`)
    localazure serve [OPTIONS]       the ARM simulator on loopback until interrupted (its options:
                                     `localazure serve --help`, the same as `python -m sim serve`)
    localazure audit [OPTIONS]       `remediation audit [OPTIONS]` (and `audit verify`) against the
                                     storage the last demo kept in .demo/

Never deployed (``.funcignore`` leaves ``localazure/`` and ``sim/`` out); the product's command
(remediation/cli.py) imports nothing from here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _cmd_demo(options: Sequence[str]) -> int:
    from localazure.demo import run

    return run()


def _cmd_serve(options: Sequence[str]) -> int:
    from sim.cli import serve

    return serve(list(options))


def _cmd_audit(options: Sequence[str]) -> int:
    from remediation.cli import main as remediation

    if "-h" in options or "--help" in options:  # help needs no storage
        return remediation(["audit", *options])
    from localazure.demo import demo_storage

    try:
        with demo_storage():
            return remediation(["audit", *options])
    except FileNotFoundError as error:
        print(str(error), file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="localazure",
        description="The local Azure stand-in (ARM simulator + Azurite) and the demo that runs on it.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the remediator end to end against the local stand-in")
    demo.set_defaults(run=_cmd_demo)
    # The next two pass their options through: the simulator's own, and `remediation audit`'s.
    serve = commands.add_parser(
        "serve",
        help="serve the ARM simulator on loopback until interrupted (--help: its options)",
        add_help=False,
    )
    serve.set_defaults(run=_cmd_serve)
    audit = commands.add_parser(
        "audit",
        help="`remediation audit [...]` (or `audit verify`) on the log the last demo left in .demo/",
        add_help=False,
    )
    audit.set_defaults(run=_cmd_audit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, options = parser.parse_known_args(argv)
    if options and args.run is _cmd_demo:
        parser.error(f"unrecognized arguments: {' '.join(options)}")
    code: int = args.run(options)
    return code


if __name__ == "__main__":
    sys.exit(main())
