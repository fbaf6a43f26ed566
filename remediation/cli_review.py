"""The `remediation` commands that review the audit log: `audit`, `audit verify`, `report`,
and the output options every command that prints a result shares (``-o``, ``--query``)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from remediation.review import parse_time
from remediation.settings import Settings


def output_options(parser: argparse.ArgumentParser, default: str = "table") -> None:
    """``-o/--output`` (``--format`` as before) and ``--query`` (JMESPath), as ``az`` has them."""
    from remediation.output import FORMATS

    parser.add_argument("-o", "--output", "--format", dest="output", choices=FORMATS, default=default)
    parser.add_argument("--query", help="a JMESPath query on the result, e.g. \"[?origin=='scale-set']\"")


def emit(args: argparse.Namespace, value: object, human: str | None = None) -> None:
    from remediation.output import shown

    sys.stdout.write(shown(value, args.output, args.query, human))


def cmd_audit(args: argparse.Namespace) -> int:
    from remediation.audit import AuditLog
    from remediation.review import parse_filters, render_csv, render_summary, render_table, summarise

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
        print(f"remediation audit: {error}", file=sys.stderr)
        return 2
    records = list(AuditLog(Settings.from_env()).search(filters))
    if args.summary:
        summary = summarise(records)
        emit(args, summary.as_json(), render_summary(summary) + "\n")
    elif args.output == "csv" and not args.query:
        sys.stdout.write(render_csv(records))  # every field, in the record's order
    else:
        emit(
            args,
            [record.as_json() for record in records],
            f"{render_table(records)}\n{len(records)} records\n",
        )
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from remediation.audit import AuditLog
    from remediation.integrity import Finding, judge, table_queries

    now = datetime.now(UTC)
    try:
        until = parse_time(args.until) if args.until else now
    except ValueError as error:
        print(f"remediation audit verify: --until: {error}", file=sys.stderr)
        return 2
    since = until - args.since
    log = AuditLog(Settings.from_env())  # storage out of reach: raised, one line and exit 3 (main)
    unfinished = log.unfinished_writes(since, until)
    table = log.entities(table_queries(since, until))
    verdict = judge(table, log.ledger.lines(since, until), since, until, every_copy=True)
    lines = []
    for write in unfinished:
        intent = write.intent
        state = "outcome unknown" if write.unknown else "no outcome"
        target = intent.target or intent.scale_set
        lines.append(f"{intent.time.isoformat()} {intent.event_id} {intent.action} {target}: {state}\n")
    missing = sum(1 for write in unfinished if not write.unknown)
    lines.append(
        f"{missing} intents without outcome, {len(unfinished) - missing} with an unknown outcome not yet "
        f"resolved, in the last {args.since}\n"
    )
    lines.extend(f"{d.finding.value:<22} {d.key or '-'}: {d.detail}\n" for d in verdict.discrepancies)
    counts = {finding.value: verdict.count(finding) for finding in Finding}
    lines.append(
        f"ledger {log.ledger.name}: {verdict.checked} records checked, {verdict.agree} agree, "
        f"{counts[Finding.EDITED.value]} edited, {counts[Finding.DELETED.value]} deleted from table, "
        f"{counts[Finding.UNLEDGERED.value]} missing from ledger"
        + "".join(
            f", {counts[finding.value]} {finding.value}"
            for finding in (Finding.AMBIGUOUS, Finding.UNREADABLE)
            if counts[finding.value]
        )
        + "\n"
    )
    value = {
        "unfinished": [
            {
                "intent_id": w.intent.record_id,
                "action": w.intent.action,
                "target": w.intent.target,
                "event_id": w.intent.event_id,
                "unknown": w.unknown,
            }
            for w in unfinished
        ],
        "ledger": log.ledger.name,
        "checked": verdict.checked,
        "agree": verdict.agree,
        "counts": counts,
        "discrepancies": [
            {"finding": d.finding.value, "key": d.key, "detail": d.detail} for d in verdict.discrepancies
        ],
    }
    emit(args, value, "".join(lines))
    return 1 if unfinished or not verdict.ok else 0


def cmd_report(args: argparse.Namespace) -> int:
    from remediation.audit import AuditLog
    from remediation.output import render
    from remediation.report import build, document, render_csv, rows
    from remediation.report_html import render_html
    from remediation.review import Filters

    until = datetime.now(UTC)
    since = until - args.since
    records = AuditLog(Settings.from_env()).search(Filters(since, until, scale_set=args.scale_set or ""))
    reports = build(records)
    if args.output == "html":
        text = render_html(reports, since, until)
    elif args.output == "csv" and not args.query:
        text = render_csv(reports, until)
    elif args.output in ("table", "tsv") and not args.query:
        text = render(rows(reports, until), args.output)
    else:
        text = render(document(reports, since, until), args.output, args.query)
    if args.file:
        with open(args.file, "w", encoding="utf-8") as out:
            out.write(text)
        print(f"{sum(len(r.exposures) for r in reports)} exposures on {len(reports)} sets: {args.file}")
    else:
        sys.stdout.write(text)
    return 0
