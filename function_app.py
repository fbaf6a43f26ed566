"""Azure Functions entry points (Python v2 programming model). Triggers only: the work is in ``remediation``.

Kept thin on purpose: each function turns its binding's input into plain data and hands it to the
engine. Heavy SDK modules are imported by the engine when first needed, not here, so a cold start
pays only for what the first event uses (DESIGN.md decision 8).
"""

from __future__ import annotations

import logging
from typing import Any

import azure.functions as func

from remediation import api, telemetry
from remediation.engine import remediator_for
from remediation.settings import STORAGE_CONNECTION, Settings

app = func.FunctionApp()
log = logging.getLogger("remediation.function_app")
telemetry.configure_exporter()


def event_grid_payload(event: Any) -> dict[str, Any]:
    """The delivered event as JSON in its own schema, for the engine's validator.

    The worker hands an Event Grid trigger a ``func.CloudEvent`` when the subscription delivers
    CloudEvents 1.0 (``eventDeliverySchema: CloudEventSchemaV1_0``), a ``func.EventGridEvent``
    otherwise, whatever the annotation says; both are handled alike. They are told apart by
    ``specversion`` (only a CloudEvent has one), not by class: a worker that loads an older
    azure-functions library has no ``func.CloudEvent``, and naming it would fail every event
    (infra sets PYTHON_ISOLATE_WORKER_DEPENDENCIES so the app's pinned library is the one loaded).
    """
    if getattr(event, "specversion", None):
        return {
            "specversion": event.specversion,
            "id": event.id,
            "source": event.source,
            "subject": event.subject,
            "type": event.type,
            "time": event.time.isoformat() if event.time else None,
            "data": event.get_json(),
        }
    return {
        "id": event.id,
        "topic": event.topic,
        "subject": event.subject,
        "eventType": event.event_type,
        "eventTime": event.event_time.isoformat() if event.event_time else None,
        "dataVersion": event.data_version,
        "data": event.get_json(),
    }


@app.function_name("on_resource_event")
@app.event_grid_trigger(arg_name="event")
def on_resource_event(event: func.EventGridEvent) -> None:
    """ResourceWriteSuccess or ResourceActionSuccess for a VMSS, VM, NIC or public IP, in either
    schema: hand the owning set, if restricted, to the work queue (short: Event Grid waits 30 s
    for the answer).

    The annotation is the one the worker's converter checks when indexing (it takes a class, not
    a union); a CloudEvents delivery arrives as ``func.CloudEvent`` all the same.

    Raising makes the host answer 500, so Event Grid redelivers: that is what happens when the
    audit store or the queue is unavailable. A malformed event is recorded as rejected and returns.
    """
    handled = remediator_for(Settings.from_env()).handle(event_grid_payload(event))
    log.info("event %s: %s %s", handled.event_id, handled.status, handled.reason)


@app.function_name("on_work")
@app.queue_trigger(arg_name="message", queue_name="%RECHECK_QUEUE%", connection=STORAGE_CONNECTION)
def on_work(message: func.QueueMessage) -> None:
    """One work-queue message: reconcile the set it names (or take in the event it carries).

    Raising leaves the message to be retried by the host (and moved to the poison queue after
    host.json's maxDequeueCount); a malformed message is recorded as rejected and removed.
    """
    handled = remediator_for(Settings.from_env()).work(message.get_body())
    log.info("work %s: %s %s", handled.event_id, handled.status, handled.reason)


@app.function_name("on_poison")
@app.queue_trigger(arg_name="message", queue_name="%RECHECK_QUEUE%-poison", connection=STORAGE_CONNECTION)
def on_poison(message: func.QueueMessage) -> None:
    """A work message the host gave up on: recorded in the audit log and kept for replay --poison."""
    body = message.get_body().decode("utf-8", errors="replace")
    handled = remediator_for(Settings.from_env()).poisoned(body, message.id or "")
    log.warning("poison %s: %s", handled.event_id, handled.reason)


@app.function_name("sweep")
@app.timer_trigger(arg_name="timer", schedule="%SWEEP_SCHEDULE%", run_on_startup=False)
def sweep(timer: func.TimerRequest) -> None:
    """The backstop for lost events: a look at every restricted set, queued (SWEEP_SCHEDULE)."""
    result = remediator_for(Settings.from_env()).sweep(scheduled=True)
    log.info(
        "%s: %d scale sets by %s, %d restricted, %d looks queued, past due: %s",
        result.sweep_id,
        result.scale_sets,
        result.source,
        len(result.restricted),
        result.queued,
        timer.past_due,
    )


def _json_response(answer: api.Answer) -> func.HttpResponse:
    return func.HttpResponse(answer.json(), status_code=answer.status, mimetype="application/json")


@app.function_name("audit")
@app.route(route="audit", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def audit(req: func.HttpRequest) -> func.HttpResponse:
    """Review the audit log: since, until, scale_set, event_id, correlation_id, outcome, page_size,
    continuation (as `remediation audit`)."""
    return _json_response(api.audit_page(dict(req.params), Settings.from_env()))


@app.function_name("replay")
@app.route(route="replay", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
def replay(req: func.HttpRequest) -> func.HttpResponse:
    """Replay events: {"event_id"|"since"|"events"|"dead_letter"|"poison": ..., "dry_run": bool};
    answers 202 with the replay's id, whose progress and results `GET /api/audit?event_id=` shows."""
    return _json_response(api.replay(req.get_body(), Settings.from_env()))


@app.function_name("doctor")
@app.route(route="doctor", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
def doctor(req: func.HttpRequest) -> func.HttpResponse:
    """The deployment checked end to end as this app sees it (`remediation doctor`); subscription."""
    return _json_response(api.doctor(dict(req.params)))
