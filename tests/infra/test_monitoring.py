"""Alerts, the workbook and the telemetry mode (infra/app/alerts.bicep, workbook.bicep,
event-topic-monitoring.bicep, kql/, host.json), against the code whose telemetry they read.

Offline, like test_infra.py: the Bicep is parsed with pycep-parser, never compiled. The queries
are files in ``infra/app/kql/`` that the Bicep loads with ``loadTextContent``, so what is checked
here is what is deployed. Beyond their shape, the alert queries are run, in a small evaluator of
the ``where`` clauses they use, over the log records the code really emits
(``remediation.telemetry.emit`` and the sweep function's completion line): an alert that could
never fire on what the app sends, or fires on what it should not, fails here.

Each check is a function returning its problems; each test also feeds it a mutated Bicep text or
query and asserts the problem is found, so no check passes vacuously.
"""

from __future__ import annotations

import ast
import itertools
import json
import logging
import re
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from pycep import BicepParser

from remediation import telemetry
from remediation.model import ActionKind, RecordKind, Result
from remediation.records import AuditRecord
from remediation.settings import Settings
from remediation.sweep import SweepResult

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
APP = INFRA / "app"
KQL = APP / "kql"
README = ROOT / "README.md"
ALERTS = APP / "alerts.bicep"
WORKBOOK = APP / "workbook.bicep"
TOPIC_MONITORING = APP / "event-topic-monitoring.bicep"
MAIN = INFRA / "main.bicep"

_PARSER = BicepParser()


def parse_text(text: str) -> dict[str, Any]:
    return cast(dict[str, Any], _PARSER.parse(text=text))


def parse(path: Path) -> dict[str, Any]:
    return parse_text(path.read_text(encoding="utf-8"))


def mutated(path: Path, old: str, new: str) -> dict[str, Any]:
    """The file parsed after one replacement, which must apply."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} is not in {path.name} exactly once"
    return parse_text(text.replace(old, new))


def loaded_text(value: Any) -> str:
    """The file a ``loadTextContent('<path>')`` value names, relative to infra/app."""
    function = value["function"]
    assert function["type"] == "load_text_content", f"not loadTextContent: {value}"
    return cast(str, function["parameters"]["file_path"])


def dotted(value: Any) -> str:
    """A property access (``a.b.c``) as written; other values as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and value.get("operator", {}).get("type") == "property_accessor":
        operands = value["operator"]["operands"]
        return f"{dotted(operands['operand_1'])}.{dotted(operands['operand_2'])}"
    return json.dumps(value)


def unquoted(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """An object's keys without the quotes pycep keeps on quoted keys ('odata.type')."""
    return {key.strip("'"): value for key, value in mapping.items()}


def kql(relative: str) -> str:
    return (APP / relative).read_text(encoding="utf-8")


# -- the KQL views: the README's and the workbook's are the same files ----------------------------

KUSTO_BLOCK = re.compile(r"```kusto\n(.*?)```", re.DOTALL)


def readme_queries(text: str) -> list[str]:
    """The queries of the README's ```kusto blocks: each starts with its // title, blank lines apart."""
    queries = []
    for block in KUSTO_BLOCK.findall(text):
        queries += [query.strip() for query in re.split(r"\n\s*\n", block) if query.strip()]
    return queries


def workbook_views(doc: Mapping[str, Any]) -> dict[str, str]:
    """View name -> the kql file the workbook loads for it."""
    return {view["name"]: loaded_text(view["query"]) for view in doc["variables"]["views"]["value"]}


# The one README query that is not a workbook view: it needs an event id typed in.
README_ONLY = "<event id>"


def view_drift(readme: str, workbook: Mapping[str, Any]) -> list[str]:
    shown = readme_queries(readme)
    deployed = {name: kql(path).strip() for name, path in workbook_views(workbook).items()}
    problems = [
        f"workbook view {name} is not in the README, or differs"
        for name, query in deployed.items()
        if query not in shown
    ]
    problems += [
        f"README query not in the workbook: {query.splitlines()[0]}"
        for query in shown
        if query not in deployed.values() and README_ONLY not in query
    ]
    return problems


def test_the_readme_shows_exactly_the_workbook_queries() -> None:
    readme = README.read_text(encoding="utf-8")
    workbook = parse(WORKBOOK)
    assert view_drift(readme, workbook) == []
    assert set(workbook_views(workbook)) == {
        "remediations-per-set",
        "exposure-windows",
        "failures",
        "rejected-events",
    }
    assert sum(README_ONLY in query for query in readme_queries(readme)) == 1
    # Can fail: the README's copy edited, a view dropped from the workbook, a README query added.
    assert view_drift(readme.replace("ago(1d)", "ago(2d)", 1), workbook)
    fewer = parse_text(
        re.sub(
            r"\{\s*name: 'failures'.*?\}\n",
            "",
            WORKBOOK.read_text(encoding="utf-8"),
            count=1,
            flags=re.DOTALL,
        )
    )
    assert "failures" not in workbook_views(fewer)
    assert view_drift(readme, fewer) == [
        "README query not in the workbook: // Everything that failed, newest first"
    ]


def workbook_problems(doc: Mapping[str, Any], main: Mapping[str, Any]) -> list[str]:
    problems = []
    (body,) = [b for b in doc["resources"].values() if b["type"] == "Microsoft.Insights/workbooks"]
    if body["api_version"] != "2022-04-01":
        problems.append(f"workbooks api {body['api_version']}")
    config = body["config"]
    properties = config["properties"]
    if config["kind"] != "shared" or properties["category"] != "workbook":
        problems.append("not a shared workbook")
    if properties["serializedData"] != {
        "function": {"type": "string", "parameters": {"value_to_convert": "workbookContent"}}
    }:
        problems.append("serializedData is not string(workbookContent)")
    if config["name"]["function"]["type"] != "guid":
        problems.append("a workbook's name must be a GUID")
    content = doc["variables"]["workbookContent"]["value"]
    if content["version"] != "Notebook/1.0" or "queryItems" not in json.dumps(content["items"]):
        problems.append("the workbook's items are not the query items")
    items = doc["variables"]["queryItems"]["value"]
    if items["loop_type"]["detail"]["array_name"] != "views":
        problems.append("one query item per view")
    item = items["config"]
    if (
        item["type"] != 3
        or dotted(item["content"]["query"]) != "view.query"
        or item["content"]["queryType"] != 0
    ):
        problems.append(f"query item: {item}")
    if item["content"]["resourceType"] != "microsoft.insights/components":
        problems.append("the items query Application Insights")
    params = main["modules"]["workbook"]["config"]["params"]
    if dotted(params["applicationInsightsId"]) != "monitoring.outputs.applicationInsightsId":
        problems.append("the workbook is not over the app's Application Insights")
    return problems


def test_the_workbook_is_a_shared_workbook_of_the_views_over_application_insights() -> None:
    main = parse(MAIN)
    assert workbook_problems(parse(WORKBOOK), main) == []
    assert main["modules"]["workbook"]["detail"]["path"] == "app/workbook.bicep"
    # Can fail:
    assert workbook_problems(mutated(WORKBOOK, "query: view.query", "query: view.title"), main)
    assert workbook_problems(mutated(WORKBOOK, "queryType: 0", "queryType: 1"), main)
    assert workbook_problems(mutated(WORKBOOK, "string(workbookContent)", "string(intro)"), main)


# -- every query reads only what the app exports, with values the code uses ----------------------

DIMENSION = re.compile(r"customDimensions\.(\w+)")
COMPARED = re.compile(r"customDimensions\.audit_(kind|result|action)\)?\s*==\s*\"([^\"]*)\"")
ACTION_LIST = re.compile(r"customDimensions\.audit_action\)\s+in\s+\(([^)]*)\)")


def dimension_problems(query: str) -> list[str]:
    problems = []
    exported = {f"audit_{name}" for name in telemetry._DIMENSIONS}
    for name in DIMENSION.findall(query):
        if name not in exported:
            problems.append(f"{name} is not a dimension remediation.telemetry exports")
    allowed = {
        "kind": {kind.value for kind in RecordKind},
        "result": {result.value for result in Result},
        "action": {action.value for action in ActionKind},
    }
    for field, value in COMPARED.findall(query):
        if value not in allowed[field]:
            problems.append(f"audit_{field} is never {value!r}")
    for listed in ACTION_LIST.findall(query):
        for value in re.findall(r"\"([^\"]*)\"", listed):
            if value not in allowed["action"]:
                problems.append(f"audit_action is never {value!r}")
    return problems


def all_queries() -> Iterator[tuple[str, str]]:
    for path in sorted(KQL.glob("*.kql")):
        yield path.name, path.read_text(encoding="utf-8")
    for number, query in enumerate(readme_queries(README.read_text(encoding="utf-8"))):
        yield f"README query {number}", query


def test_every_query_reads_dimensions_the_app_exports_with_values_it_uses() -> None:
    queries = list(all_queries())
    assert len(queries) >= 13
    for name, query in queries:
        assert dimension_problems(query) == [], name
    # Can fail: a field the telemetry does not carry (the record's version); a misspelt kind.
    assert dimension_problems("traces | project customDimensions.audit_version")
    assert dimension_problems('traces | where customDimensions.audit_kind == "outcomes"')
    assert dimension_problems('traces | where tostring(customDimensions.audit_action) in ("strip")')


def ends_exposure_in_code() -> set[str]:
    """The actions ``remediation.review.summarise`` counts as ending an instance's exposure."""
    tree = ast.parse((ROOT / "remediation" / "review.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "ends_exposure" for target in node.targets
        ):
            compare = node.value
            assert isinstance(compare, ast.Compare) and isinstance(compare.comparators[0], ast.Tuple)
            return {cast(str, ast.literal_eval(item)) for item in compare.comparators[0].elts}
    raise AssertionError("remediation/review.py: no ends_exposure")


def exposure_actions(query: str) -> set[str]:
    (listed,) = ACTION_LIST.findall(query)
    return set(re.findall(r"\"([^\"]*)\"", listed))


def test_the_exposure_view_ends_an_exposure_where_the_audit_summary_does() -> None:
    query = kql("kql/exposure-windows.kql")
    assert (
        exposure_actions(query)
        == ends_exposure_in_code()
        == {ActionKind.DETACH_PUBLIC_IP, ActionKind.DELETE_VM, ActionKind.SET_CAPACITY_ZERO}
    )
    # Can fail: a public IP's deletion comes after its detach, which already ended the exposure.
    assert exposure_actions(query.replace('"delete-vm"', '"delete-public-ip"')) != ends_exposure_in_code()


# -- a small evaluator of the alert queries' where clauses ---------------------------------------

TOKEN = re.compile(
    r'\s*(?:(?P<string>"[^"]*")|(?P<op>==|!=|>|<)|(?P<paren>[()])|(?P<comma>,)|(?P<word>[A-Za-z_][\w.]*(?:\(\d+[dhm]\))?))'
)


class Where:
    """``a and b``, ``or``, ``not(...)``, ``(...)``, ``<field> == "v"``, ``startswith``,
    ``contains``, ``has``, ``in ("a", ...)``, ``timestamp > ago(..)`` (true), over a trace's
    message and customDimensions."""

    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(text.rstrip()):
            match = TOKEN.match(text, position)
            assert match and match.lastgroup, f"cannot read {text[position:]!r}"
            self.tokens.append((match.lastgroup, match.group(match.lastgroup)))
            position = match.end()
        self.at = 0

    def evaluate(self, trace: Mapping[str, Any]) -> bool:
        self.at = 0
        value = self._or(trace)
        assert self.at == len(self.tokens), f"unread: {self.tokens[self.at :]}"
        return value

    def _next(self) -> tuple[str, str]:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def _peek(self) -> str:
        return self.tokens[self.at][1] if self.at < len(self.tokens) else ""

    def _or(self, trace: Mapping[str, Any]) -> bool:
        value = self._and(trace)
        while self._peek() == "or":
            self._next()
            value = self._and(trace) or value
        return value

    def _and(self, trace: Mapping[str, Any]) -> bool:
        value = self._term(trace)
        while self._peek() == "and":
            self._next()
            value = self._term(trace) and value
        return value

    def _term(self, trace: Mapping[str, Any]) -> bool:
        if self._peek() in ("not", "("):
            negate = self._next()[1] == "not"
            if negate:
                assert self._next()[1] == "("
            value = self._or(trace)
            assert self._next()[1] == ")"
            return not value if negate else value
        operand = self._operand(trace)
        operator = self._next()[1]
        if operator == ">":
            assert self._next()[1].startswith("ago(")
            return True
        if operator == "in":
            assert self._next()[1] == "("
            values = []
            while (token := self._next())[1] != ")":
                if token[0] == "string":
                    values.append(token[1].strip('"'))
            return operand in values
        expected = self._next()[1].strip('"')
        return {
            "==": operand == expected,
            "!=": operand != expected,
            # KQL's startswith, contains and has ignore case; == does not.
            "startswith": operand.lower().startswith(expected.lower()),
            "contains": expected.lower() in operand.lower(),
            "has": re.search(rf"(?<!\w){re.escape(expected)}(?!\w)", operand, re.IGNORECASE) is not None,
        }[operator]

    def _operand(self, trace: Mapping[str, Any]) -> str:
        kind, word = self._next()
        if word == "tostring":
            assert self._next()[1] == "("
            value = self._operand(trace)
            assert self._next()[1] == ")"
            return value
        if word == "timestamp":
            return ""
        if word == "message":
            return cast(str, trace["message"])
        assert kind == "word" and word.startswith("customDimensions."), word
        return str(trace["customDimensions"].get(word.removeprefix("customDimensions."), ""))


def where_clauses(query: str) -> list[Where]:
    """The query's ``| where`` clauses (a clause runs to the next ``|`` at a line start)."""
    body = "\n".join(line for line in query.splitlines() if not line.lstrip().startswith("//"))
    stages = re.split(r"\n\s*\|", body)
    assert stages[0].strip() == "traces", "the alerts query Application Insights traces"
    return [
        Where(stage.strip().removeprefix("where"))
        for stage in stages[1:]
        if stage.strip().startswith("where ")
    ]


def matches(query: str, trace: Mapping[str, Any]) -> bool:
    clauses = where_clauses(query)
    assert clauses, "no where clause"
    return all(clause.evaluate(trace) for clause in clauses)


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def as_trace(record: logging.LogRecord) -> dict[str, Any]:
    """What the Azure Monitor exporter makes of a log record: the message, and the attributes the
    record was given (``extra``) as customDimensions."""
    plain = logging.LogRecord("x", logging.INFO, "x", 0, "", (), None).__dict__
    return {
        "message": record.getMessage(),
        "customDimensions": {k: v for k, v in record.__dict__.items() if k not in plain and k != "message"},
    }


def exported(record: AuditRecord) -> dict[str, Any]:
    """The trace remediation.telemetry.emit sends for an audit record."""
    handler = Captured()
    telemetry.audit_log.addHandler(handler)
    level = telemetry.audit_log.level
    telemetry.audit_log.setLevel(logging.INFO)
    try:
        telemetry.emit(record)
    finally:
        telemetry.audit_log.removeHandler(handler)
        telemetry.audit_log.setLevel(level)
    (captured,) = handler.records
    return as_trace(captured)


def poison_reason_in_code() -> str:
    """The reason ``Worker.poisoned`` records a poison message with (remediation/worker.py)."""
    tree = ast.parse((ROOT / "remediation" / "worker.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "poisoned":
            source = ast.unparse(node)
            assert "RecordKind.ERROR" in source and "Result.FAILED.value" in source
            for inner in ast.walk(node):
                if isinstance(inner, ast.Assign) and getattr(inner.targets[0], "id", "") == "reason":
                    return cast(str, ast.literal_eval(inner.value))
    raise AssertionError("remediation/worker.py: poisoned() records no reason")


def records() -> dict[str, AuditRecord]:
    """One of each kind of record the alerts must tell apart."""
    vmss = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachineScaleSets/web"
    return {
        "failed write": AuditRecord(
            RecordKind.OUTCOME,
            event_id="e1",
            scale_set=vmss,
            action=ActionKind.DETACH_PUBLIC_IP.value,
            result=Result.FAILED.value,
            error="InternalServerError",
        ),
        "succeeded write": AuditRecord(
            RecordKind.OUTCOME,
            event_id="e2",
            scale_set=vmss,
            action=ActionKind.DETACH_PUBLIC_IP.value,
            result=Result.SUCCEEDED.value,
        ),
        "unknown write": AuditRecord(
            RecordKind.OUTCOME, event_id="e3", action=ActionKind.DELETE_VM.value, result=Result.UNKNOWN.value
        ),
        "error": AuditRecord(
            RecordKind.ERROR,
            event_id="e4",
            result=Result.FAILED.value,
            reason="the audit store is unavailable: Event Grid delivers again",
            error="503",
        ),
        "poison": AuditRecord(
            RecordKind.ERROR,
            event_id="e5",
            scale_set=vmss,
            result=Result.FAILED.value,
            reason=poison_reason_in_code(),
        ),
        "rejected": AuditRecord(RecordKind.REJECTED, event_id="e6", reason="not an Event Grid event"),
        "decision": AuditRecord(RecordKind.DECISION, event_id="e7", scale_set=vmss, reason="not restricted"),
    }


def sweep_id_prefix_in_code() -> str:
    tree = ast.parse((ROOT / "remediation" / "sweep.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "sweep_id":
            assert isinstance(node.value, ast.JoinedStr)
            first = node.value.values[0]
            assert isinstance(first, ast.Constant)
            return cast(str, first.value)
    raise AssertionError("remediation/sweep.py: no sweep_id")


def sweep_completion_trace(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The line function_app.sweep logs once a sweep has returned, as exported."""
    monkeypatch.delenv("APPLICATIONINSIGHTS_CONNECTION_STRING", raising=False)
    import function_app

    result = SweepResult(f"{sweep_id_prefix_in_code()}{uuid.uuid4()}", "resource graph", 12, (), 0)
    monkeypatch.setattr(
        function_app, "remediator_for", lambda settings: SimpleNamespace(sweep=lambda scheduled: result)
    )
    monkeypatch.setattr(Settings, "from_env", classmethod(lambda cls: None))
    handler = Captured()
    level = function_app.log.level
    function_app.log.addHandler(handler)
    function_app.log.setLevel(logging.INFO)
    try:
        function_app.sweep(SimpleNamespace(past_due=False))
    finally:
        function_app.log.removeHandler(handler)
        function_app.log.setLevel(level)
    (captured,) = handler.records
    return as_trace(captured)


# alert -> (its query file, the traces it matches: every other one it must not)
FIRES_ON: dict[str, tuple[str, set[str]]] = {
    "failedRemediations": ("kql/alert-failed-remediations.kql", {"failed write"}),
    "errorRecords": ("kql/alert-error-records.kql", {"error"}),
    "poisonMessages": ("kql/alert-poison-messages.kql", {"poison"}),
    "noSweep": ("kql/alert-sweep-completed.kql", {"sweep completed"}),  # counts completed sweeps
}


def firing(query: str, traces: Mapping[str, Mapping[str, Any]]) -> set[str]:
    return {name for name, trace in traces.items() if matches(query, trace)}


def test_each_alert_query_matches_exactly_the_records_it_is_about(monkeypatch: pytest.MonkeyPatch) -> None:
    traces = {name: exported(record) for name, record in records().items()}
    traces["sweep completed"] = sweep_completion_trace(monkeypatch)
    assert traces["poison"]["customDimensions"]["audit_reason"].startswith("poison:")
    for alert, (path, expected) in FIRES_ON.items():
        assert firing(kql(path), traces) == expected, alert
    # Can fail: the error alert without its poison exclusion fires on poison messages too; a sweep
    # query on the audit decision would count sweeps that died after listing the sets.
    errors = kql("kql/alert-error-records.kql").replace(
        ' and not(tostring(customDimensions.audit_reason) startswith "poison:")', ""
    )
    assert firing(errors, traces) == {"error", "poison"}
    assert not firing(kql("kql/alert-sweep-completed.kql").replace('"sweep-"', '"sweep "'), traces)
    failed = kql("kql/alert-failed-remediations.kql").replace(
        'audit_result == "failed"', 'audit_result != "succeeded"'
    )
    assert firing(failed, traces) == {"failed write", "unknown write"}


# -- the alert rules ---------------------------------------------------------------------------

LOG_ALERTS: dict[str, dict[str, Any]] = {
    "failedRemediations": {"operator": "GreaterThan", "threshold": 0, "severity": 1},
    "errorRecords": {"operator": "GreaterThan", "threshold": 0, "severity": 2},
    "poisonMessages": {"operator": "GreaterThan", "threshold": 0, "severity": 2},
    "noSweep": {"operator": "LessThan", "threshold": 1, "severity": 1},
}


def minutes(duration: str) -> int:
    match = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?", duration)
    assert match and duration != "P", duration
    days, hours, mins = (int(part or 0) for part in match.groups())
    return days * 1440 + hours * 60 + mins


def log_alert_problems(doc: Mapping[str, Any], name: str) -> list[str]:
    expected = LOG_ALERTS[name]
    body = doc["resources"][name]
    problems = []
    if body["type"] != "Microsoft.Insights/scheduledQueryRules" or body["api_version"] != "2022-06-15":
        problems.append(f"{name}: {body['type']}@{body['api_version']}")
    config = body["config"]
    properties = config["properties"]
    if config.get("kind") != "LogAlert":
        problems.append(f"{name}: not a LogAlert")
    if properties["scopes"] != ["applicationInsightsId"]:
        problems.append(f"{name}: scoped to {properties['scopes']}, not the Application Insights component")
    if properties["enabled"] is not True or properties["autoMitigate"] is not True:
        problems.append(f"{name}: not enabled and stateful")
    if properties["severity"] != expected["severity"]:
        problems.append(f"{name}: severity {properties['severity']}")
    (criterion,) = properties["criteria"]["allOf"]
    if loaded_text(criterion["query"]) != FIRES_ON[name][0]:
        problems.append(f"{name}: query {criterion['query']}")
    for key in ("operator", "threshold"):
        if criterion[key] != expected[key]:
            problems.append(f"{name}: {key} {criterion[key]!r}, expected {expected[key]!r}")
    if criterion["timeAggregation"] != "Count" or "metricMeasureColumn" in criterion:
        problems.append(f"{name}: must count the query's rows")
    if criterion["failingPeriods"] != {"numberOfEvaluationPeriods": 1, "minFailingPeriodsToAlert": 1}:
        problems.append(f"{name}: failing periods {criterion['failingPeriods']}")
    frequency = resolve_duration(doc, properties["evaluationFrequency"])
    window = resolve_duration(doc, properties["windowSize"])
    if frequency is None or (window is not None and minutes(frequency) > minutes(window)):
        problems.append(f"{name}: evaluated every {frequency} over {window}")
    if [dotted(group) for group in properties["actions"]["actionGroups"]] != ["actionGroup.id"]:
        problems.append(f"{name}: does not notify the action group")
    return problems


def resolve_duration(doc: Mapping[str, Any], value: str) -> str | None:
    """A duration as written or the variable's value; None for the no-sweep window parameter."""
    if value in doc.get("variables", {}):
        return cast(str, doc["variables"][value]["value"])
    if value in doc.get("parameters", {}):
        return None
    return value


@pytest.mark.parametrize("name", sorted(LOG_ALERTS))
def test_each_log_alert_counts_its_query_on_application_insights_and_notifies(name: str) -> None:
    assert log_alert_problems(parse(ALERTS), name) == []


def test_the_log_alert_check_notices_a_changed_rule() -> None:
    assert log_alert_problems(mutated(ALERTS, "operator: 'LessThan'", "operator: 'GreaterThan'"), "noSweep")
    text = ALERTS.read_text(encoding="utf-8")
    assert text.count("threshold: 0") == 3
    raised = parse_text(text.replace("threshold: 0", "threshold: 5", 1))
    assert log_alert_problems(raised, "failedRemediations")
    assert log_alert_problems(
        mutated(ALERTS, "alert-poison-messages.kql", "alert-error-records.kql"), "poisonMessages"
    )
    assert log_alert_problems(
        mutated(ALERTS, "failureWindow = 'PT15M'", "failureWindow = 'PT1M'"), "errorRecords"
    )
    unscoped = parse_text(text.replace("applicationInsightsId\n    ]", "'/subscriptions/x'\n    ]", 1))
    assert log_alert_problems(unscoped, "failedRemediations")


def test_main_deploys_the_alerts_on_the_app_s_application_insights() -> None:
    main = parse(MAIN)
    alerts = main["modules"]["alerts"]
    assert alerts["detail"]["path"] == "app/alerts.bicep"
    params = alerts["config"]["params"]
    assert dotted(params["applicationInsightsId"]) == "monitoring.outputs.applicationInsightsId"
    assert params["alertEmails"] == "alertEmails" and params["sweepAlertWindow"] == "sweepAlertWindow"


# -- the action group and alertEmail -----------------------------------------------------------


def action_group_problems(alerts: Mapping[str, Any], main: Mapping[str, Any]) -> list[str]:
    problems = []
    body = alerts["resources"]["actionGroup"]
    if body["type"] != "Microsoft.Insights/actionGroups" or body["api_version"] != "2023-01-01":
        problems.append(f"{body['type']}@{body['api_version']}")
    properties = body["config"]["properties"]
    if body["config"]["location"] != "Global" or properties["enabled"] is not True:
        problems.append("an action group is Global and enabled")
    if len(properties["groupShortName"]) > 12:
        problems.append("groupShortName is at most 12 characters")
    receivers = properties["emailReceivers"]
    if (
        receivers["loop_type"]["detail"]["array_name"] != "alertEmails"
        or receivers["config"]["emailAddress"] != "address"
    ):
        problems.append("one email receiver per address of alertEmails")
    if alerts["parameters"]["alertEmails"]["default"] != []:
        problems.append("no address: no receiver")
    if main["parameters"]["alertEmail"]["default"] != "":
        problems.append("alertEmail defaults to empty")
    emails = main["variables"]["alertEmails"]["value"]
    if "alertEmail" not in json.dumps(emails) or "split" not in json.dumps(emails):
        problems.append("alertEmails are alertEmail's addresses")
    return problems


def test_the_action_group_emails_alert_email_and_has_no_receiver_without_it() -> None:
    alerts, main = parse(ALERTS), parse(MAIN)
    assert action_group_problems(alerts, main) == []
    parameters = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert parameters["alertEmail"]["value"] == "${ALERT_EMAIL}"
    # Can fail:
    assert action_group_problems(
        mutated(ALERTS, "emailAddress: address", "emailAddress: 'ops@example.com'"), main
    )
    assert action_group_problems(
        alerts, mutated(MAIN, "param alertEmail string = ''", "param alertEmail string = 'a@b.c'")
    )


# -- the no-sweep window: twice the sweep's period -----------------------------------------------


def _field_values(field: str, limit: int) -> set[int]:
    if field == "*":
        return set(range(limit))
    if field.startswith("*/"):
        return set(range(0, limit, int(field[2:])))
    return {int(part) for part in field.split(",")}


def sweep_period_minutes(schedule: str) -> int:
    """The longest gap, in minutes, between two runs of a six-field NCRONTAB schedule that fires
    every day (seconds, minutes and hours fields; the day fields must be ``*``)."""
    seconds, mins, hours, *days = schedule.split()
    assert days == ["*", "*", "*"], f"{schedule}: the period of a schedule by day is not computed here"
    assert _field_values(seconds, 60) == {0}, f"{schedule}: runs at second 0 only"
    runs = sorted(h * 60 + m for h in _field_values(hours, 24) for m in _field_values(mins, 60))
    gaps = [later - earlier for earlier, later in itertools.pairwise(runs)]
    return max([*gaps, runs[0] + 1440 - runs[-1]])


def allowed_windows(alerts: Mapping[str, Any]) -> list[str]:
    (decorator,) = [
        d for d in alerts["parameters"]["sweepAlertWindow"]["decorators"] if d["type"] == "allowed"
    ]
    return cast(list[str], decorator["argument"])


def sweep_window_problems(main: Mapping[str, Any], alerts: Mapping[str, Any]) -> list[str]:
    problems = []
    table = {key.strip("'"): value for key, value in main["variables"]["sweepAlertWindows"]["value"].items()}
    allowed = allowed_windows(alerts)
    default = main["parameters"]["sweepSchedule"]["default"]
    if default not in table:
        problems.append(f"no window for the default schedule {default}")
    for schedule, window in table.items():
        wanted = 2 * sweep_period_minutes(schedule)
        fitting = [w for w in allowed if minutes(w) >= wanted]
        if window not in allowed:
            problems.append(f"{schedule}: {window} is not a window alerts.bicep allows")
        elif not fitting or window != min(fitting, key=minutes):
            problems.append(f"{schedule}: {window}, expected the least allowed window >= {wanted} min")
    choice = main["variables"]["sweepAlertWindow"]["value"]["operator"]["operands"]
    if "sweepSchedule" not in json.dumps(choice["condition"]) or choice["false_value"] in allowed:
        problems.append("an unlisted schedule must arrive as a value alerts.bicep refuses")
    return problems


def test_the_no_sweep_window_is_twice_the_sweep_schedule() -> None:
    main, alerts = parse(MAIN), parse(ALERTS)
    assert sweep_window_problems(main, alerts) == []
    assert sweep_period_minutes("0 */15 * * * *") == 15
    assert sweep_period_minutes("0 0 */2 * * *") == 120
    table = {key.strip("'"): value for key, value in main["variables"]["sweepAlertWindows"]["value"].items()}
    assert table[main["parameters"]["sweepSchedule"]["default"]] == "PT30M"
    # The window is the parameter the table fills; the rule is evaluated more often than that.
    no_sweep = alerts["resources"]["noSweep"]["config"]["properties"]
    assert no_sweep["windowSize"] == "sweepAlertWindow"
    assert minutes(alerts["variables"]["evaluationFrequency"]["value"]) <= min(
        minutes(w) for w in allowed_windows(alerts)
    )
    # Can fail: a window of one period, a window Azure does not take, an unlisted default.
    assert sweep_window_problems(
        mutated(MAIN, "'0 */15 * * * *': 'PT30M'", "'0 */15 * * * *': 'PT15M'"), alerts
    )
    assert sweep_window_problems(mutated(MAIN, "'0 0 */3 * * *': 'PT6H'", "'0 0 */3 * * *': 'PT7H'"), alerts)
    assert sweep_window_problems(
        mutated(
            MAIN,
            "param sweepSchedule string = '0 */15 * * * *'",
            "param sweepSchedule string = '0 */7 * * * *'",
        ),
        alerts,
    )


# -- Event Grid: diagnostic settings and metric alerts on each system topic ----------------------


def topic_monitoring_problems(doc: Mapping[str, Any], main: Mapping[str, Any]) -> list[str]:
    problems = []
    resources = doc["resources"]
    topic = resources["systemTopic"]
    if topic["type"] != "Microsoft.EventGrid/systemTopics" or topic.get("existing") is not True:
        problems.append("the topic is the existing system topic")
    diagnostics = resources["diagnostics"]
    if diagnostics["type"] != "Microsoft.Insights/diagnosticSettings":
        problems.append("no diagnostic settings")
    config = diagnostics["config"]
    properties = config["properties"]
    if config.get("scope") != "systemTopic" or properties["workspaceId"] != "workspaceId":
        problems.append("the diagnostic settings are not the topic's, to the workspace")
    if {(log["category"], log["enabled"]) for log in properties["logs"]} != {("DeliveryFailures", True)}:
        problems.append(f"logs: {properties['logs']}")
    if properties["metrics"] != [{"category": "AllMetrics", "enabled": True}]:
        problems.append(f"metrics: {properties['metrics']}")
    for name, metric in (("deadLettered", "DeadLetteredCount"), ("dropped", "DroppedEventCount")):
        body = resources[name]
        if body["type"] != "Microsoft.Insights/metricAlerts" or body["api_version"] != "2018-03-01":
            problems.append(f"{name}: {body['type']}@{body['api_version']}")
        alert = body["config"]["properties"]
        if body["config"]["location"] != "global" or [dotted(s) for s in alert["scopes"]] != [
            "systemTopic.id"
        ]:
            problems.append(f"{name}: not on the topic")
        criteria = unquoted(alert["criteria"])
        (criterion,) = criteria["allOf"]
        if criteria["odata.type"] != "Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria":
            problems.append(f"{name}: criteria type")
        wanted = {
            "criterionType": "StaticThresholdCriterion",
            "metricNamespace": "Microsoft.EventGrid/systemTopics",
            "metricName": metric,
            "operator": "GreaterThan",
            "threshold": 0,
            "timeAggregation": "Total",
        }
        for key, value in wanted.items():
            if criterion.get(key) != value:
                problems.append(f"{name}: {key} {criterion.get(key)!r}, expected {value!r}")
        if minutes(alert["evaluationFrequency"]) > minutes(alert["windowSize"]):
            problems.append(f"{name}: evaluated less often than its window")
        if alert["actions"] != [{"actionGroupId": "actionGroupId"}]:
            problems.append(f"{name}: does not notify the action group")
    monitoring = main["modules"]["eventTopicMonitoring"]
    if monitoring["detail"]["path"] != "app/event-topic-monitoring.bicep":
        problems.append("main does not deploy event-topic-monitoring.bicep")
    loop = monitoring["config"]
    params = json.dumps(loop["config"]["params"])
    # wiredSubscriptions: the monitored subscriptions, none in management-group mode (the policy's).
    if loop["loop_type"]["detail"]["array_name"] != "wiredSubscriptions" or "eventTopics" not in params:
        problems.append("one per monitored subscription's topic")
    given = loop["config"]["params"]
    if dotted(given["workspaceId"]) != "monitoring.outputs.logAnalyticsId":
        problems.append("not the app's Log Analytics workspace")
    if dotted(given["actionGroupId"]) != "alerts.outputs.actionGroupId":
        problems.append("not the alerts' action group")
    return problems


def test_each_system_topic_sends_its_logs_to_the_workspace_and_alerts_on_lost_events() -> None:
    main = parse(MAIN)
    doc = parse(TOPIC_MONITORING)
    assert topic_monitoring_problems(doc, main) == []
    # Can fail:
    assert topic_monitoring_problems(
        mutated(TOPIC_MONITORING, "metricName: 'DroppedEventCount'", "metricName: 'DroppedEvents'"), main
    )
    assert topic_monitoring_problems(
        mutated(TOPIC_MONITORING, "category: 'DeliveryFailures'", "category: 'PublishFailures'"), main
    )
    assert topic_monitoring_problems(mutated(TOPIC_MONITORING, "  scope: systemTopic\n", ""), main)
    text = TOPIC_MONITORING.read_text(encoding="utf-8")
    assert text.count("timeAggregation: 'Total'") == 2
    assert topic_monitoring_problems(
        parse_text(text.replace("timeAggregation: 'Total'", "timeAggregation: 'Average'", 1)), main
    )


# -- telemetry: exported once, by the app ---------------------------------------------------------


def telemetry_problems(host: Mapping[str, Any], host_settings: Mapping[str, Any]) -> list[str]:
    problems = []
    if host.get("telemetryMode") != "OpenTelemetry":
        problems.append("host.json: telemetryMode is not OpenTelemetry")
    if host_settings.get("PYTHON_ENABLE_OPENTELEMETRY") != "true":
        problems.append("PYTHON_ENABLE_OPENTELEMETRY: without it the host relays the worker's logs again")
    if "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY" in host_settings:
        problems.append(
            "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: a second exporter, without the identity"
        )
    if "APPLICATIONINSIGHTS_CONNECTION_STRING" not in host_settings:
        problems.append("the host and the app export to Application Insights by its connection string")
    return problems


def host_settings(text: str) -> dict[str, Any]:
    return cast(dict[str, Any], parse_text(text)["variables"]["hostSettings"]["value"])


def test_telemetry_is_open_telemetry_exported_once_by_the_app() -> None:
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    function = (APP / "function.bicep").read_text(encoding="utf-8")
    assert telemetry_problems(host, host_settings(function)) == []
    # The app's exporter is what PYTHON_ENABLE_OPENTELEMETRY leaves in charge: it is configured at
    # import, with the managed identity, for the remediation loggers.
    source = (ROOT / "remediation" / "telemetry.py").read_text(encoding="utf-8")
    assert 'logger_name="remediation"' in source and "credential=credential" in source
    assert "telemetry.configure_exporter()" in (ROOT / "function_app.py").read_text(encoding="utf-8")
    # Can fail:
    assert telemetry_problems({**host, "telemetryMode": "ApplicationInsights"}, host_settings(function))
    assert telemetry_problems(
        host,
        host_settings(
            function.replace(
                "PYTHON_ENABLE_OPENTELEMETRY: 'true'", "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: 'true'"
            )
        ),
    )


# -- the README names what is deployed ------------------------------------------------------------


def test_the_readme_lists_every_alert_query_file() -> None:
    readme = README.read_text(encoding="utf-8")
    for path in sorted(KQL.glob("alert-*.kql")):
        assert f"infra/app/kql/{path.name}" in readme, path.name
    for metric in ("DeadLetteredCount", "DroppedEventCount"):
        assert metric in readme


def test_every_kql_file_is_loaded_by_the_bicep() -> None:
    loaded: set[str] = set()
    for path in APP.glob("*.bicep"):
        loaded |= set(re.findall(r"loadTextContent\('([^']+)'\)", path.read_text(encoding="utf-8")))
    files = {f"kql/{path.name}" for path in KQL.glob("*.kql")}
    assert files == loaded
