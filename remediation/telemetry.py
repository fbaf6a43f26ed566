"""Each audit record is also a structured log record, exported to Application Insights.

The audit table is the record of truth; this is the operational view: the same records as
traces with their fields as custom dimensions (``audit_kind``, ``audit_scale_set``, ...), so the
KQL queries in README.md work in Log Analytics. When ``APPLICATIONINSIGHTS_CONNECTION_STRING``
is set, azure-monitor-opentelemetry exports the ``remediation`` loggers, authenticating with the
managed identity (Entra) when ``AZURE_CLIENT_ID`` is set; it is imported only then, so a cold
start without it pays nothing.
"""

from __future__ import annotations

import logging
import os
import threading

from remediation.records import AuditRecord

audit_log = logging.getLogger("remediation.audit")
_configured = False
_lock = threading.Lock()

# Fields that go to telemetry: everything a reviewer filters on; not the evidence text.
_DIMENSIONS = (
    "kind",
    "event_id",
    "correlation_id",
    "operation",
    "caller",
    "resource",
    "scale_set",
    "instance",
    "nic",
    "public_ip",
    "mode",
    "origin",
    "action",
    "result",
    "reason",
    "error",
    "exposed_since",
    "arm_request_id",
    "intent_id",
    "duration_ms",
    "dry_run",
    "replay_of",
    "record_id",
)


def configure_exporter() -> bool:
    """Start exporting to Application Insights if it is configured; idempotent. True if exporting."""
    global _configured  # noqa: PLW0603 - configuration is per process, once
    connection_string = os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip()
    if not connection_string:
        return False
    with _lock:
        if _configured:
            return True
        from azure.monitor.opentelemetry import configure_azure_monitor

        credential = None
        client_id = os.environ.get("AZURE_CLIENT_ID", "").strip()
        if client_id:
            from azure.identity import ManagedIdentityCredential

            credential = ManagedIdentityCredential(client_id=client_id)
        configure_azure_monitor(
            connection_string=connection_string,
            credential=credential,
            logger_name="remediation",
            enable_live_metrics=False,
        )
        _configured = True
    return True


def emit(record: AuditRecord) -> None:
    """Log one stored audit record with its fields as attributes."""
    if not audit_log.isEnabledFor(logging.INFO):
        return
    values = record.as_json()
    level = logging.WARNING if record.failed else logging.INFO
    audit_log.log(
        level,
        "audit %s %s %s %s",
        record.kind.value,
        record.action or "-",
        record.result or "-",
        record.instance or record.scale_set or record.resource or record.event_id,
        extra={f"audit_{name}": values[name] for name in _DIMENSIONS},
    )
