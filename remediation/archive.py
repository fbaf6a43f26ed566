"""The event archive (Blob): raw events as received, for replay, poison messages kept by
``on_poison``, and Event Grid's dead letters; a replay marks what it queued (``REPLAYED_BY``)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from remediation.audit import blob_service
from remediation.journal import AuditUnavailable
from remediation.records import safe_event_id
from remediation.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

# The metadata a replay leaves on the poison message or dead letter it queued.
REPLAYED_BY = "replayedby"


class EventArchive:
    """Raw events as received, for replay; and Event Grid's dead-lettered events."""

    def __init__(self, settings: Settings, credential: TokenCredential | None = None) -> None:
        self._service = blob_service(settings, credential)
        self._container = self._service.get_container_client(settings.archive_container)
        self._retention = timedelta(days=settings.archive_retention_days)
        self._ready = False

    @staticmethod
    def blob_name(event_id: str, received: datetime) -> str:
        safe = safe_event_id(event_id)
        return f"{received.astimezone(UTC).strftime('%Y/%m/%d/%H')}/{safe}.json"

    def store(self, event_id: str, event: object, received: datetime) -> str:
        """Keep the raw event; returns its blob name (recorded on the received record)."""
        try:
            return self.keep(self.blob_name(event_id, received), json.dumps(event, default=str))
        except AuditUnavailable as error:
            raise AuditUnavailable(f"event {event_id} was not archived: {error}") from error

    def load(self, name: str) -> object:
        from azure.core.exceptions import AzureError

        try:
            return json.loads(self._container.download_blob(name).readall())
        except AzureError as error:
            raise AuditUnavailable(f"archived event {name} cannot be read: {error}") from error

    def since(self, start: datetime, end: datetime) -> Iterator[tuple[str, object]]:
        """Archived events received in [start, end], oldest hour first."""
        for name, text in self.kept("", start, end):
            yield name, json.loads(text)

    def keep(self, name: str, text: str) -> str:
        """Keep a text (a poison message) under ``name``; returns the name."""
        from azure.core.exceptions import AzureError, ResourceExistsError

        try:
            if not self._ready:
                with contextlib.suppress(ResourceExistsError):
                    self._container.create_container()
                self._ready = True
            self._container.upload_blob(name, text.encode(), overwrite=True)
        except AzureError as error:
            raise AuditUnavailable(f"{name} was not kept: {error}") from error
        return name

    def kept(
        self, prefix: str, start: datetime, end: datetime, *, unreplayed: bool = False
    ) -> Iterator[tuple[str, str]]:
        """The texts kept under ``prefix`` + hour in [start, end], oldest hour first;
        ``unreplayed``: only those no replay has marked."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        try:
            while hour <= end:
                for blob in self._container.list_blobs(
                    name_starts_with=prefix + hour.strftime("%Y/%m/%d/%H/"), include=["metadata"]
                ):
                    if unreplayed and REPLAYED_BY in (blob.metadata or {}):
                        continue
                    yield blob.name, self._container.download_blob(blob.name).readall().decode()
                hour += timedelta(hours=1)
        except ResourceNotFoundError:
            return
        except AzureError as error:
            raise AuditUnavailable(f"event archive cannot be listed: {error}") from error

    def prune(self, now: datetime, days_back: int = 7) -> int:
        """Delete archived events older than the retention (the days just past it); returns how many."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        cutoff = (now - self._retention).astimezone(UTC)
        deleted = 0
        try:
            for back in range(1, days_back + 1):
                day = (cutoff - timedelta(days=back)).strftime("%Y/%m/%d/")
                for blob in self._container.list_blobs(name_starts_with=day):
                    self._container.delete_blob(blob.name)
                    deleted += 1
        except ResourceNotFoundError:
            return deleted
        except AzureError as error:
            raise AuditUnavailable(f"event archive cannot be pruned: {error}") from error
        return deleted

    def mark_replayed(self, blob: str, replay_id: str, container: str = "") -> None:
        """Note on a kept blob (a poison message, a dead letter; in ``container``, default the
        archive's) the replay that queued it, so `doctor` no longer counts it as waiting."""
        from azure.core.exceptions import AzureError

        client = self._service.get_container_client(container) if container else self._container
        try:
            client.get_blob_client(blob).set_blob_metadata({REPLAYED_BY: replay_id})
        except AzureError as error:
            raise AuditUnavailable(f"{blob} was queued but not marked replayed: {error}") from error

    def waiting(self, prefix: str = "", container: str = "") -> int | None:
        """How many blobs under ``prefix`` (in ``container``, default the archive's) no replay has
        marked; None when the container does not exist."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        client = self._service.get_container_client(container) if container else self._container
        try:
            return sum(
                1
                for blob in client.list_blobs(name_starts_with=prefix or None, include=["metadata"])
                if REPLAYED_BY not in (blob.metadata or {})
            )
        except ResourceNotFoundError:
            return None
        except AzureError as error:
            raise AuditUnavailable(f"container {client.container_name} cannot be listed: {error}") from error

    def missing_containers(self, names: Iterable[str]) -> list[str]:
        """Which of these blob containers do not exist (reached with this identity)."""
        from azure.core.exceptions import AzureError

        try:
            return [name for name in names if not self._service.get_container_client(name).exists()]
        except AzureError as error:
            raise AuditUnavailable(f"blob storage cannot be reached: {error}") from error

    def dead_letters(self, container: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Events from Event Grid's dead-letter blobs no replay has marked: each blob is a JSON
        array of events carrying ``deadLetterReason``, ``deliveryAttempts``, ``lastDeliveryOutcome``
        and friends."""
        from azure.core.exceptions import AzureError

        client = self._service.get_container_client(container)
        try:
            for blob in client.list_blobs(include=["metadata"]):
                if REPLAYED_BY in (blob.metadata or {}):
                    continue
                content = json.loads(client.download_blob(blob.name).readall())
                for event in content if isinstance(content, list) else [content]:
                    yield blob.name, event
        except AzureError as error:
            raise AuditUnavailable(f"dead-letter container {container} cannot be read: {error}") from error
