"""The `remediation` command: demo, whatif, sweep, audit review and verification, replay.

Configuration comes from the same app settings the function app reads (environment variables,
see local.settings.json.example), so what the command shows is what the deployed app sees.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from remediation.review import parse_duration, parse_time
from remediation.settings import Settings, SettingsError


def duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _cmd_sim(args: argparse.Namespace) -> int:
    try:
        from sim.cli import serve
    except ImportError as error:  # the deployed package leaves the simulator out
        print(f"the simulator is in the source tree only: {error}", file=sys.stderr)
        return 2
    return serve(args.options)


def _cmd_demo(args: argparse.Namespace) -> int:
    try:
        from localazure.demo import run
    except ImportError as error:  # the deployed package leaves the local stand-in out
        print(f"the demo needs the local Azure stand-in from the source tree: {error}", file=sys.stderr)
        return 2
    return run()


def _cmd_audit(args: argparse.Namespace) -> int:
    from remediation.audit import AuditLog
    from remediation.review import (
        parse_filters,
        render_csv,
        render_json,
        render_summary,
        render_table,
        summarise,
    )

    params = {
        "since": args.since,
        "until": args.until or "",
        "scale_set": args.scale_set or "",
        "event_id": args.event_id or "",
        "correlation_id": args.correlation_id or "",
        "outcome": args.outcome or "",
    }
    try:
        filters = parse_filters(params, datetime.now(UTC))
    except ValueError as error:
        print(f"audit: {error}", file=sys.stderr)
        return 2
    records = list(AuditLog(Settings.from_env()).search(filters))
    if args.summary:
        summary = summarise(records)
        print(json.dumps(summary.as_json(), indent=2) if args.format == "json" else render_summary(summary))
    elif args.format == "json":
        print(render_json(records))
    elif args.format == "csv":
        sys.stdout.write(render_csv(records))
    else:
        print(render_table(records))
        print(f"{len(records)} records")
    return 0


def _cmd_audit_verify(args: argparse.Namespace) -> int:
    from remediation.audit import AuditLog
    from remediation.integrity import Finding, judge, table_queries
    from remediation.journal import AuditUnavailable

    now = datetime.now(UTC)
    try:
        until = parse_time(args.until) if args.until else now
    except ValueError as error:
        print(f"audit verify: --until: {error}", file=sys.stderr)
        return 2
    since = until - args.since
    log = AuditLog(Settings.from_env())
    try:
        unfinished = log.unfinished_writes(since, until)
        table = log.entities(table_queries(since, until))
        verdict = judge(table, log.ledger.lines(since, until), since, until, every_copy=True)
    except AuditUnavailable as error:
        print(f"audit verify: {error}", file=sys.stderr)
        return 2
    for write in unfinished:
        intent = write.intent
        state = "outcome unknown" if write.unknown else "no outcome"
        target = intent.target or intent.scale_set
        print(f"{intent.time.isoformat()} {intent.event_id} {intent.action} {target}: {state}")
    missing = sum(1 for write in unfinished if not write.unknown)
    print(
        f"{missing} intents without outcome, {len(unfinished) - missing} with an unknown outcome not yet "
        f"resolved, in the last {args.since}"
    )
    for discrepancy in verdict.discrepancies:
        print(f"{discrepancy.finding.value:<22} {discrepancy.key or '-'}: {discrepancy.detail}")
    print(
        f"ledger {log.ledger.name}: {verdict.checked} records checked, {verdict.agree} agree, "
        f"{verdict.count(Finding.EDITED)} edited, {verdict.count(Finding.DELETED)} deleted from table, "
        f"{verdict.count(Finding.UNLEDGERED)} missing from ledger"
        + "".join(
            f", {verdict.count(finding)} {finding.value}"
            for finding in (Finding.AMBIGUOUS, Finding.UNREADABLE)
            if verdict.count(finding)
        )
    )
    return 1 if unfinished or not verdict.ok else 0


class Progress:
    """A progress bar on stderr for long replays (a line every 10% when stderr is not a terminal)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._tty = sys.stderr.isatty()
        self._last_decile = -1

    def __call__(self, done: int) -> None:
        if self.total < 20:
            return
        if self._tty:
            filled = int(30 * done / self.total)
            sys.stderr.write(f"\rreplaying [{'#' * filled}{' ' * (30 - filled)}] {done}/{self.total}")
            if done == self.total:
                sys.stderr.write("\n")
        elif (decile := 10 * done // self.total) != self._last_decile:
            self._last_decile = decile
            sys.stderr.write(f"queued {done}/{self.total}\n")


def _cmd_replay(args: argparse.Namespace) -> int:
    from pathlib import Path

    from remediation.engine import ReplayItem, remediator_for
    from remediation.events import events_from_text
    from remediation.journal import AuditUnavailable

    settings = Settings.from_env()
    remediator = remediator_for(dataclasses.replace(settings, dry_run=settings.dry_run or args.dry_run))
    try:
        if args.event_id:
            items = [remediator.archived_event(args.event_id)]
        elif args.since:
            items = list(remediator.archived_since(args.since))
        elif args.file:
            text = Path(args.file).read_text(encoding="utf-8")
            items = [
                ReplayItem(f"file {args.file}[{i}]", event)
                for i, event in enumerate(events_from_text(text, args.file))
            ]
        elif args.poison:
            items = list(remediator.poison_since(args.poison))
        else:
            items = list(remediator.dead_lettered(args.dead_letter))
        queued = remediator.replay(items, Progress(len(items)))
    except (LookupError, ValueError, OSError, AuditUnavailable) as error:
        print(f"replay: {error}", file=sys.stderr)
        return 2
    for item in items:
        print(f"queued  {item.source}")
    print(
        f"{queued.replay_id}: {queued.queued} events queued{' (dry run)' if args.dry_run else ''}; "
        f"follow them with: remediation audit --event-id {queued.replay_id}"
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


def _cmd_sweep(args: argparse.Namespace) -> int:
    from remediation.engine import remediator_for

    settings = Settings.from_env()
    if args.dry_run:
        settings = dataclasses.replace(settings, dry_run=True)
    result = remediator_for(settings).sweep(args.subscription or ())
    print(
        f"{result.sweep_id}: {result.scale_sets} scale sets found by {result.source}, "
        f"{len(result.restricted)} restricted{' (dry run)' if settings.dry_run else ''}; "
        f"{result.queued} looks queued"
    )
    for set_id in result.restricted:
        print(f"  {set_id.name}")
    for subscription in result.refused:
        print(f"refused: subscription {subscription} is not monitored (policy monitored_subscriptions)")
    print(f"follow them with: remediation audit --event-id {result.sweep_id}")
    return 1 if result.refused else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="remediation", description=__doc__.splitlines()[0] if __doc__ else None
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the remediator end to end against the local Azure stand-in")
    demo.set_defaults(run=_cmd_demo)
    sim = commands.add_parser("sim", help="the local ARM simulator: `remediation sim serve [--help]`")
    sim_commands = sim.add_subparsers(dest="sim_command", required=True)
    # Its options are the simulator's own (python -m sim serve --help); main() passes them through.
    serve = sim_commands.add_parser("serve", help="serve it on loopback until interrupted", add_help=False)
    serve.set_defaults(run=_cmd_sim, options=[])
    audit = commands.add_parser("audit", help="review the audit log (or: audit verify)")
    audit.add_argument("--since", default="24h", help="how far back, e.g. 30m, 24h, 7d (default 24h)")
    audit.add_argument("--until", help="end of the window, ISO 8601 (default now)")
    audit.add_argument("--scale-set", help="one scale set's history (its resource id)")
    audit.add_argument("--event-id", help="one event's records")
    audit.add_argument("--correlation-id", help="the records of one ARM correlation id")
    audit.add_argument("--outcome", help="succeeded, failed, conflict, skipped, or a record kind")
    audit.add_argument("--format", choices=("table", "json", "csv"), default="table")
    audit.add_argument("--summary", action="store_true", help="counts by set and outcome, exposure windows")
    audit.add_argument("--demo", action="store_true", help="review the log the last `remediation demo` left")
    audit.set_defaults(run=_cmd_audit)
    audit_commands = audit.add_subparsers(dest="audit_command")
    verify = audit_commands.add_parser(
        "verify", help="report intents without an outcome, and where the table and its ledger disagree"
    )
    verify.add_argument("--since", type=duration, default=timedelta(days=7), help="how far back (default 7d)")
    verify.add_argument("--until", help="end of the window, ISO 8601 (default now)")
    verify.set_defaults(run=_cmd_audit_verify)
    replay = commands.add_parser("replay", help="replay events through the work queue, as live ones")
    source = replay.add_mutually_exclusive_group(required=True)
    source.add_argument("--event-id", help="an archived event, by id")
    source.add_argument("--since", type=duration, help="every event archived in this window, e.g. 2h")
    source.add_argument("--file", help="a JSON file: an event, an array of events, or JSON lines")
    source.add_argument("--dead-letter", metavar="CONTAINER", help="Event Grid's dead-letter blob container")
    source.add_argument(
        "--poison",
        type=duration,
        metavar="WINDOW",
        help="the poison queue's messages kept in this window, e.g. 7d",
    )
    replay.add_argument("--dry-run", action="store_true", help="plan and record only, write nothing to ARM")
    replay.set_defaults(run=_cmd_replay)
    whatif = commands.add_parser("whatif", help="plan against exported ARM JSON, with no ARM at all")
    whatif.add_argument("--inventory", nargs="+", required=True, metavar="FILE", help="ARM JSON exports")
    whatif.add_argument("--config", metavar="FILE", help="a policy file (as REMEDIATION_POLICY_FILE)")
    whatif.add_argument("--format", choices=("table", "json"), default="table")
    whatif.set_defaults(run=_cmd_whatif)
    sweep = commands.add_parser("sweep", help="queue a look at every restricted scale set now")
    sweep.add_argument(
        "--subscription", action="append", help="a subscription id (repeatable); default: the policy's"
    )
    sweep.add_argument("--dry-run", action="store_true", help="plan and record only, write nothing to ARM")
    sweep.set_defaults(run=_cmd_sweep)
    return parser


def _on_demo_storage(args: argparse.Namespace) -> int:
    """Run a review command against the storage the last `remediation demo` left in .demo/."""
    try:
        from localazure.demo import demo_storage
    except ImportError as error:
        print(f"--demo needs the local Azure stand-in from the source tree: {error}", file=sys.stderr)
        return 2
    try:
        with demo_storage():
            code: int = args.run(args)
    except FileNotFoundError as error:
        print(str(error), file=sys.stderr)
        return 2
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.run is not _cmd_sim:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.options = extra
    try:
        if getattr(args, "demo", False):
            return _on_demo_storage(args)
        code: int = args.run(args)
    except SettingsError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
