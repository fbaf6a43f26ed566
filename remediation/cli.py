"""The `remediation` command: whatif, sweep, audit review and verification, replay, report, doctor.

Configuration comes from the same app settings the function app reads (environment variables,
see local.settings.json.example), so what the command shows is what the deployed app sees. The
local stand-in's verbs (the demo, the simulator) are the `localazure` command's (localazure/cli.py):
this one is the product's and imports nothing from ``sim`` or ``localazure``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from remediation.cli_review import cmd_audit, cmd_audit_verify, cmd_report, emit, output_options
from remediation.review import parse_duration
from remediation.settings import Settings, SettingsError


def duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def subscription(text: str) -> str:
    """A ``--subscription`` argument: a subscription id (a GUID), as the ids ARM reads are checked."""
    from remediation.resource_ids import InvalidResourceId, subscription_id

    try:
        return subscription_id(text)
    except InvalidResourceId as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def group_members(text: str) -> tuple[str, frozenset[str]]:
    """A ``--under`` argument: ``<management group>=<subscription id>[,...]`` (group lower case)."""
    from remediation.resource_ids import InvalidResourceId, management_group_name

    group, equals, subscriptions = text.partition("=")
    if not equals:
        raise argparse.ArgumentTypeError(f"{text!r} is not <management group>=<subscription id>[,...]")
    try:
        name = management_group_name(group.strip()).lower()
    except InvalidResourceId as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    listed = [entry.strip() for entry in subscriptions.split(",") if entry.strip()]
    return name, frozenset(subscription(entry).lower() for entry in listed)


def scale_set_id(text: str) -> str:
    """A ``--scale-set`` argument: a scale set's resource id, parsed as every id from outside is."""
    from remediation.resource_ids import SCALE_SET_TYPE, InvalidResourceId, ResourceId

    try:
        return ResourceId.parse(text, expected_type=SCALE_SET_TYPE).value
    except InvalidResourceId as error:
        raise argparse.ArgumentTypeError(str(error)) from None


class Progress:
    """A progress bar on stderr for long work, when stderr is a terminal (as ``az`` shows one);
    nothing otherwise, so scripts and logs read only the result. Called with (done, total)."""

    MIN_TOTAL = 20  # shorter work finishes before a bar is worth drawing

    def __init__(self, label: str) -> None:
        self.label = label
        self._tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        if not self._tty or total < self.MIN_TOTAL:
            return
        filled = int(30 * done / total)
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{' ' * (30 - filled)}] {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _cmd_replay(args: argparse.Namespace) -> int:
    from pathlib import Path

    from remediation.engine import ReplayItem, remediator_for
    from remediation.events import events_from_text

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
        progress = Progress("replaying")
        queued = remediator.replay(items, lambda done: progress(done, len(items)))
    except (LookupError, ValueError) as error:
        print(f"remediation replay: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    lines = [f"queued  {item.source}\n" for item in items]
    lines.append(
        f"{queued.replay_id}: {queued.queued} events queued{' (dry run)' if args.dry_run else ''}; "
        f"follow them with: remediation audit --event-id {queued.replay_id}\n"
    )
    value = {
        "replay_id": queued.replay_id,
        "queued": queued.queued,
        "sources": [item.source for item in items],
        "dry_run": args.dry_run,
    }
    emit(args, value, "".join(lines))
    return 0


def _cmd_whatif(args: argparse.Namespace) -> int:
    from pathlib import Path

    from remediation.exemptions import today_utc
    from remediation.inventory import InventoryError, load_inventory
    from remediation.plan import plan
    from remediation.policy import Policy, PolicyError, load_policy, restriction_for

    try:
        inventory = load_inventory((str(p), Path(p).read_text(encoding="utf-8")) for p in args.inventory)
        policy = (
            load_policy(Path(args.config).read_text(encoding="utf-8"), args.config)
            if args.config
            else Policy()
        )
    except (InventoryError, PolicyError, OSError) as error:
        print(f"remediation whatif: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    under = dict(args.under or ())
    unknown = sorted(policy.scope_groups - set(under))
    if unknown:  # a guess that no subscription is under them would show their sets unrestricted
        print(
            f"remediation whatif: the policy's scopes name management group {unknown[0]}: give the "
            f"subscriptions under it with --under {unknown[0]}=<subscription id>[,...]",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    policy = policy.placed(under)
    rows: list[dict[str, object]] = []
    names: list[str] = []  # each row's instance's name, for the table
    progress = Progress("planning")
    estate = inventory.observed(datetime.now(UTC))
    for done, observed in enumerate(estate, start=1):
        progress(done, len(estate))
        restriction = restriction_for(observed.scale_set, policy)
        if restriction.mode is None:
            continue
        the_plan = plan(observed, restriction.mode, policy, today_utc())
        for finding, action, left_alone in the_plan.per_finding():
            names.append(finding.instance.name)
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
    lines = [
        f"{name:<28} {row['origin']:<11} {row['mode']:<14} {row['action']:<34} {row['reason']}\n"
        for name, row in zip(names, rows, strict=True)
    ]
    lines.append(f"{len(rows)} findings in {len(inventory.scale_sets)} scale sets\n")
    emit(args, rows, "".join(lines))
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from remediation.engine import remediator_for

    settings = Settings.from_env()
    if args.dry_run:
        settings = dataclasses.replace(settings, dry_run=True)
    result = remediator_for(settings).sweep(args.subscription or (), Progress("queueing looks"))
    lines = [
        f"{result.sweep_id}: {result.scale_sets} scale sets found by {result.source}, "
        f"{len(result.restricted)} restricted{' (dry run)' if settings.dry_run else ''}; "
        f"{result.queued} looks queued\n",
        *(f"  {set_id.name}\n" for set_id in result.restricted),
        *(
            f"refused: subscription {subscription} is not monitored "
            "(policy monitored_subscriptions, monitored_management_groups)\n"
            for subscription in result.refused
        ),
        f"follow them with: remediation audit --event-id {result.sweep_id}\n",
    ]
    value = {
        "sweep_id": result.sweep_id,
        "source": result.source,
        "scale_sets": result.scale_sets,
        "restricted": [set_id.value for set_id in result.restricted],
        "queued": result.queued,
        "refused": list(result.refused),
        "dry_run": settings.dry_run,
    }
    emit(args, value, "".join(lines))
    return 1 if result.refused else 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from remediation.doctor import Status, exit_code
    from remediation.doctor_probe import as_rows, diagnose

    checks = diagnose(subscriptions=args.subscription or ())
    width = max(len(check.name) for check in checks)
    lines = [
        f"{check.status.value:<4}  {check.name:<{width}}  {check.detail}\n"
        + (f"{'':<{width + 6}}fix: {check.fix}\n" if check.fix and check.status is not Status.OK else "")
        for check in checks
    ]
    failed = sum(check.status is Status.FAIL for check in checks)
    lines.append(f"{len(checks)} checks, {failed} failed\n")
    emit(args, as_rows(checks), "".join(lines))
    return exit_code(checks)


def _add_doctor(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    doctor = commands.add_parser(
        "doctor", help="check the deployment end to end: settings, storage, permissions, events, sweep"
    )
    doctor.add_argument(
        "--subscription",
        action="append",
        type=subscription,
        help="a subscription id to check (repeatable); default: the policy's monitored ones",
    )
    output_options(doctor)
    doctor.set_defaults(run=_cmd_doctor)


def build_parser() -> argparse.ArgumentParser:
    from remediation.output import FORMATS

    parser = argparse.ArgumentParser(
        prog="remediation", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True)
    audit = commands.add_parser("audit", help="review the audit log (or: audit verify)")
    audit.add_argument("--since", default="24h", help="how far back, e.g. 30m, 24h, 7d (default 24h)")
    audit.add_argument("--until", help="end of the window, ISO 8601 (default now)")
    audit.add_argument("--scale-set", type=scale_set_id, help="one scale set's history (its resource id)")
    audit.add_argument("--event-id", help="one event's records")
    audit.add_argument("--correlation-id", help="the records of one ARM correlation id")
    audit.add_argument("--outcome", help="succeeded, failed, conflict, skipped, or a record kind")
    output_options(audit)
    audit.add_argument("--summary", action="store_true", help="counts by set and outcome, exposure windows")
    audit.set_defaults(run=cmd_audit)
    audit_commands = audit.add_subparsers(dest="audit_command")
    verify = audit_commands.add_parser(
        "verify", help="report intents without an outcome, and where the table and its ledger disagree"
    )
    verify.add_argument("--since", type=duration, default=timedelta(days=7), help="how far back (default 7d)")
    verify.add_argument("--until", help="end of the window, ISO 8601 (default now)")
    output_options(verify)
    verify.set_defaults(run=cmd_audit_verify)
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
    output_options(replay)
    replay.set_defaults(run=_cmd_replay)
    whatif = commands.add_parser("whatif", help="plan against exported ARM JSON, with no ARM at all")
    whatif.add_argument("--inventory", nargs="+", required=True, metavar="FILE", help="ARM JSON exports")
    whatif.add_argument("--config", metavar="FILE", help="a policy file (as REMEDIATION_POLICY_FILE)")
    whatif.add_argument(
        "--under",
        action="append",
        type=group_members,
        metavar="GROUP=SUB[,SUB...]",
        help="the subscriptions under a management group the policy's scopes name (repeatable)",
    )
    output_options(whatif)
    whatif.set_defaults(run=_cmd_whatif)
    sweep = commands.add_parser("sweep", help="queue a look at every restricted scale set now")
    sweep.add_argument(
        "--subscription",
        action="append",
        type=subscription,
        help="a subscription id (repeatable); default: the policy's",
    )
    sweep.add_argument("--dry-run", action="store_true", help="plan and record only, write nothing to ARM")
    output_options(sweep)
    sweep.set_defaults(run=_cmd_sweep)
    _add_doctor(commands)
    report = commands.add_parser(
        "report", help="per restricted set: each public IP that appeared, its exposure, what was done"
    )
    report.add_argument("--since", type=duration, default=timedelta(days=30), help="window (default 30d)")
    report.add_argument("--scale-set", help="one scale set (its resource id)")
    report.add_argument("-o", "--output", choices=(*FORMATS, "html"), default="json")
    report.add_argument("--query", help="a JMESPath query on the report's JSON document")
    report.add_argument("--file", help="write the report to this file instead of standard output")
    report.set_defaults(run=cmd_report)
    return parser


# Exit codes (README, "Commands"): 0 done; 1 done, with something refused (a sweep of a
# subscription that is not monitored) or found wrong (`audit verify`); 2 bad input (arguments,
# files, settings); 3 Azure or its storage could not be reached, or refused; 4 a fault of this
# command itself (run again with --debug for the traceback, and report it).
EXIT_BAD_INPUT, EXIT_AZURE, EXIT_INTERNAL = 2, 3, 4


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    from remediation.output import QueryError

    parser = build_parser()
    args = parser.parse_args(argv)
    command = f"remediation {args.command}"
    try:
        code: int = args.run(args)
    except SettingsError as error:
        print(f"{command}: configuration error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except UnicodeDecodeError as error:
        print(f"{command}: a file is not UTF-8 text: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except QueryError as error:
        print(f"{command}: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # one line, no traceback (--debug shows it), a documented code
        from azure.core.exceptions import AzureError

        from remediation.arm_errors import ArmError
        from remediation.journal import AuditUnavailable

        if args.debug:
            raise
        if isinstance(error, ArmError):  # ARM refused (a 4xx), failed (5xx) or was not reached
            refused = error.status is not None and 400 <= error.status < 500
            what = "ARM refused it" if refused else "ARM could not be reached or failed"
            print(f"{command}: {what}: {_one_line(error)}", file=sys.stderr)
            return EXIT_AZURE
        if isinstance(error, OSError) and error.filename:  # a file of ours: bad input
            print(f"{command}: {_one_line(error)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if isinstance(error, AzureError | AuditUnavailable | OSError):
            reached = "Azure or its storage could not be reached"
            print(f"{command}: {reached}: {_one_line(error)}", file=sys.stderr)
            return EXIT_AZURE
        where = f"internal error ({type(error).__name__})"
        print(f"{command}: {where}: {_one_line(error)}; --debug shows the traceback", file=sys.stderr)
        return EXIT_INTERNAL
    return code


if __name__ == "__main__":
    sys.exit(main())
