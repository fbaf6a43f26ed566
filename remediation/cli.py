"""The `remediation` command: demo, whatif, sweep, audit review.

Configuration comes from the same app settings the function app reads (environment variables,
see local.settings.json.example), so what the command shows is what the deployed app sees.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import re
import sys
from collections.abc import Sequence
from datetime import timedelta

from remediation.settings import Settings, SettingsError

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 30m, 24h or 7d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _cmd_demo(args: argparse.Namespace) -> int:
    try:
        from localazure.demo import run
    except ImportError as error:  # the deployed package leaves the local stand-in out
        print(f"the demo needs the local Azure stand-in from the source tree: {error}", file=sys.stderr)
        return 2
    return run()


def _cmd_audit(args: argparse.Namespace) -> int:
    from remediation.audit import AuditLog

    settings = Settings.from_env()
    records = [r.as_json() for r in AuditLog(settings).records(since=args.since)]
    columns = ["time", "kind", "event_id", "scale_set", "instance", "action", "result", "reason", "error"]
    if args.format == "json":
        json.dump(records, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif args.format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(records[0]) if records else columns)
        writer.writeheader()
        writer.writerows(records)
    else:
        for record in records:
            short = {k: str(record[k]).rsplit("/", 1)[-1] for k in ("scale_set", "instance")}
            print(
                f"{record['time'][:23]:<24} {record['kind']:<10} {short['scale_set']:<20} "
                f"{short['instance']:<24} {record['action']:<17} {record['result']:<10} "
                f"{record['reason'] or record['error']}"
            )
        print(f"{len(records)} records")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from remediation.engine import remediator_for

    settings = Settings.from_env()
    if args.dry_run:
        settings = dataclasses.replace(settings, dry_run=True)
    result = remediator_for(settings).sweep(args.subscription or ())
    print(
        f"{result.sweep_id}: {result.scale_sets} scale sets found by {result.source}, "
        f"{len(result.restricted)} restricted{' (dry run)' if settings.dry_run else ''}"
    )
    for reconciled in result.results:
        remediated = sum(1 for outcome in reconciled.outcomes if outcome.result.value == "succeeded")
        print(
            f"  {reconciled.scale_set.name:<30} {reconciled.mode or '-':<14} "
            f"{reconciled.findings} findings, {remediated} remediated"
        )
    return 0


def _cmd_whatif(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime
    from pathlib import Path

    from remediation.inventory import InventoryError, load_inventory
    from remediation.plan import plan
    from remediation.policy import Policy, PolicyError, load_policy, restriction_for, today_utc

    try:
        inventory = load_inventory((str(p), Path(p).read_text(encoding="utf-8")) for p in args.inventory)
        policy = (
            load_policy(Path(args.config).read_text(encoding="utf-8"), args.config)
            if args.config
            else Policy()
        )
    except (InventoryError, PolicyError, OSError) as error:
        print(f"whatif: {error}", file=sys.stderr)
        return 2
    rows: list[dict[str, object]] = []
    for observed in inventory.observed(datetime.now(UTC)):
        restriction = restriction_for(observed.scale_set, policy)
        if restriction.mode is None:
            continue
        the_plan = plan(observed, restriction.mode, policy, today_utc())
        for finding, action, left_alone in the_plan.per_finding():
            rows.append(
                {
                    "scale_set": finding.scale_set.id.value,
                    "instance": finding.instance.id.value,
                    "nic": finding.nic.id.value,
                    "public_ip": [ip.value for ip in finding.public_ip_ids],
                    "origin": finding.origin.value,
                    "evidence": list(finding.evidence),
                    "mode": the_plan.mode.value,
                    "action": action,
                    "reason": left_alone or restriction.reason,
                }
            )
    if args.format == "json":
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for row in rows:
            print(
                f"{str(row['instance']).rsplit('/', 1)[-1]:<28} {row['origin']:<11} {row['mode']:<14} "
                f"{row['action']:<34} {row['reason']}"
            )
        print(f"{len(rows)} findings in {len(inventory.scale_sets)} scale sets")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="remediation", description=__doc__.splitlines()[0] if __doc__ else None
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the remediator end to end against the local Azure stand-in")
    demo.set_defaults(run=_cmd_demo)
    audit = commands.add_parser("audit", help="review the audit log")
    audit.add_argument(
        "--since", type=duration, default=timedelta(hours=24), help="how far back (default 24h)"
    )
    audit.add_argument("--format", choices=("table", "json", "csv"), default="table")
    audit.set_defaults(run=_cmd_audit)
    whatif = commands.add_parser("whatif", help="plan against exported ARM JSON, with no ARM at all")
    whatif.add_argument("--inventory", nargs="+", required=True, metavar="FILE", help="ARM JSON exports")
    whatif.add_argument("--config", metavar="FILE", help="a policy file (as REMEDIATION_POLICY_FILE)")
    whatif.add_argument("--format", choices=("table", "json"), default="table")
    whatif.set_defaults(run=_cmd_whatif)
    sweep = commands.add_parser("sweep", help="reconcile every restricted scale set now")
    sweep.add_argument(
        "--subscription", action="append", help="a subscription id (repeatable); default: the policy's"
    )
    sweep.add_argument("--dry-run", action="store_true", help="plan and record only, write nothing to ARM")
    sweep.set_defaults(run=_cmd_sweep)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except SettingsError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
