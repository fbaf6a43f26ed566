"""The work queue (Queue): looks at sets, queued events and re-checks, one set per message, as
Base64 text (what the Functions queue trigger expects by default); and the poison queue the host
moves a message to after host.json's maxDequeueCount failures."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import TYPE_CHECKING

from remediation.audit import storage_retry
from remediation.credentials import managed_identity
from remediation.journal import AuditUnavailable
from remediation.model import QueuedEvent, Recheck
from remediation.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

# A queue message holds 64 KiB once base64-encoded: an event larger than this goes by its archive blob.
MAX_INLINE_EVENT_BYTES = 45_000


class RecheckQueue:
    def __init__(self, settings: Settings, credential: TokenCredential | None = None) -> None:
        from azure.storage.queue import QueueClient, TextBase64EncodePolicy

        def client(name: str) -> QueueClient:
            encode = TextBase64EncodePolicy()
            if settings.storage_connection_string:
                return QueueClient.from_connection_string(
                    settings.storage_connection_string,
                    name,
                    message_encode_policy=encode,
                    **storage_retry(settings),
                )
            return QueueClient(
                settings.queue_endpoint,
                name,
                credential=credential or managed_identity(settings),
                message_encode_policy=encode,
                **storage_retry(settings),
            )

        self._queue = client(settings.recheck_queue)
        # Where the Functions host moves a message after maxDequeueCount failures (on_poison takes it).
        self._poison = client(f"{settings.recheck_queue}-poison")
        self._ready = False

    def backlog(self) -> tuple[int | None, int | None]:
        """Messages waiting in the work queue and in its poison queue (approximate, as Storage
        counts them; None for a queue not yet created)."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        counts: list[int | None] = []
        for queue in (self._queue, self._poison):
            try:
                counts.append(queue.get_queue_properties().approximate_message_count)
            except ResourceNotFoundError:
                counts.append(None)
            except AzureError as error:
                raise AuditUnavailable(f"queue {queue.queue_name} cannot be read: {error}") from error
        return counts[0], counts[1]

    def schedule(self, recheck: Recheck, delay_s: float) -> None:
        """Queue a look at a set, visible after ``delay_s``."""
        self._send(recheck.to_message(), delay_s, f"re-check of {recheck.scale_set}")

    def schedule_event(self, queued: QueuedEvent, archived: str = "") -> None:
        """Queue an event for intake on a worker; by its archive blob (``archived``) when it is
        too big for a queue message (64 KiB, base64 included)."""
        message = queued.to_message()
        if len(message) > MAX_INLINE_EVENT_BYTES:
            if not archived:
                raise AuditUnavailable(f"event {queued.event_id} is too big to queue and was not archived")
            message = dataclasses.replace(queued, event=None, archive=archived).to_message()
        self._send(message, 0, f"event {queued.event_id}")

    def send(self, message: str) -> None:
        """Queue a message as it is (a poison message replayed)."""
        self._send(message, 0, "a replayed message")

    def _send(self, message: str, delay_s: float, what: str) -> None:
        from azure.core.exceptions import AzureError, ResourceExistsError

        try:
            if not self._ready:
                with contextlib.suppress(ResourceExistsError):
                    self._queue.create_queue()
                self._ready = True
            self._queue.send_message(message, visibility_timeout=round(delay_s))
        except AzureError as error:
            raise AuditUnavailable(f"{what} was not queued: {error}") from error
