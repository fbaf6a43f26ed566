"""One reconcile of a scale set at a time, across every host: a blob lease per set.

Functions runs many hosts side by side, and Event Grid delivers a storm of events for one set to
any of them. Each reconcile reads the whole set, so one running is enough, provided whatever asked
for the set meanwhile is looked at once it ends. Azure Storage has the primitive (Azurite serves it
too): a blob lease, held by one client at a time, 15-60 s and renewed while held, lost when its
holder stops renewing (learn.microsoft.com/rest/api/storageservices/lease-blob).

- `{set}.lock` is leased while a reconcile of the set runs; a renewer thread keeps it (every third
  of the lease), so a host that dies loses it within one lease period.
- `{set}.wanted` is the mark: whoever finds the set taken overwrites it (its ETag changes at every
  write), then tries the lease once more; if it is still taken it returns at once.
- The holder reads the mark's ETag before each reconcile, releases the lease after it, and only
  then reads the mark again. Unchanged: it deletes the mark on that ETag and is done. Changed:
  something asked meanwhile, so it takes the lease again and reconciles again; if it cannot, the
  new holder has it. A mark written before a holder's last read is covered by that reconcile; one
  written after it is seen by that read or finds the lease free; none is lost, and no two
  reconciles of a set overlap while leases hold.

A caller that finds the set taken gets `Taken`, and should leave a way back (a delayed re-check,
which reconciles the set if it is still marked), since the holder may die before it reads the
mark. Intake (`join`, `mark`) marks a set without taking its lease: a mark renewed while it
exists reaches whoever looks at the set next, and a look is queued before a new mark is made,
so every mark has a look behind it. If Blob storage cannot be reached to take the lease, the
work runs without it (`Unguarded`): the security control does not wait on its own coordination,
and If-Match still keeps parallel writers apart.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from remediation.resource_ids import ResourceId
from remediation.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.storage.blob import BlobClient, BlobLeaseClient

R = TypeVar("R")
log = logging.getLogger(__name__)

# How often a holder that keeps finding new marks reconciles again before it leaves the rest to
# the next caller (each pass already covers every mark written before it started).
MAX_PASSES = 5


@dataclass(frozen=True)
class Taken:
    """Another holder has the set; it was left marked for that holder."""


@dataclass(frozen=True)
class Held(Generic[R]):
    """The work ran under the lease; ``left_marked``: the set may still be asked for and nobody
    holds it (the caller leaves a way back)."""

    result: R
    left_marked: bool


@dataclass(frozen=True)
class Unguarded(Generic[R]):
    """Blob storage was unreachable: the work ran without the lease."""

    result: R
    why: str


class SetLocks:
    """Leases and marks in one blob container, one pair of blobs per scale set."""

    def __init__(self, settings: Settings, credential: TokenCredential | None = None) -> None:
        from remediation.audit import blob_service

        self._container = blob_service(settings, credential).get_container_client(settings.lock_container)
        self._lease_seconds = settings.set_lease_seconds
        self._ready = False

    def run(
        self, set_id: ResourceId, work: Callable[[], R], *, mark: bool = True
    ) -> Held[R] | Taken | Unguarded[R]:
        """``work()`` with the set's lease held, again while the set was asked for meanwhile
        (`Held`); `Taken` when another holder has the set (with ``mark``, it is left marked for
        that holder; a way back, whose mark is already there, passes ``mark=False``); `Unguarded`
        when Blob storage could not be reached to take the lease and no holder is known: the work
        ran without it (remediation must not wait on its own coordination; If-Match still keeps
        parallel writers apart)."""
        from azure.core.exceptions import AzureError

        try:
            lock, wanted = self._blobs(set_id)
            lease = self._acquire(lock)
        except AzureError as error:
            log.warning("the lease of %s could not be taken: %s", set_id, error)
            return Unguarded(work(), f"{type(error).__name__}: {error}")
        if lease is None:
            try:
                if mark:
                    self._mark(set_id, wanted)
                lease = self._acquire(lock)
            except AzureError as error:  # a holder exists: never run beside it
                log.warning("the set %s is taken and its mark could not be written: %s", set_id, error)
                return Taken()
            if lease is None:
                return Taken()
        return self._passes(set_id, lock, wanted, lease, work)

    def join(self, set_id: ResourceId) -> bool:
        """Renew the set's mark if it has one: True when a look at the set is pending (queued, or
        running and yet to read the mark again), which will now see this request; False when the
        set is unmarked (the caller queues a look, then ``mark``s the set). Raises AzureError."""
        from azure.core.exceptions import ResourceNotFoundError

        wanted = self._blobs(set_id)[1]
        try:
            # Only if it exists: a mark the holder deletes meanwhile is not brought back unseen.
            wanted.set_blob_metadata({"scale_set": set_id.value})
        except ResourceNotFoundError:
            return False
        return True

    def mark(self, set_id: ResourceId) -> None:
        """Mark the set as asked for (a look is queued for it), unless it is marked already."""
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            self._blobs(set_id)[1].upload_blob(b"", overwrite=False, metadata={"scale_set": set_id.value})

    def clear(self, set_id: ResourceId) -> None:
        """Delete the set's mark: it was settled without a reconcile (gone, or not restricted), so
        nothing asked for it needs one. Best effort: a mark left behind is settled by the sweep."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            self._blobs(set_id)[1].delete_blob()
        except ResourceNotFoundError:
            return
        except AzureError as error:
            log.warning("the mark of %s could not be cleared: %s", set_id, error)

    def marked(self, set_id: ResourceId) -> bool:
        """Whether something asked for the set since it was last looked at (True when the mark
        cannot be read: looking again is the safe side)."""
        from azure.core.exceptions import AzureError

        try:
            return _etag(self._blobs(set_id)[1]) is not None
        except AzureError as error:
            log.warning("the mark of %s could not be read: %s", set_id, error)
            return True

    def break_lease(self, set_id: ResourceId) -> None:
        """End the set's lease now, as its lapse would (an operator freeing a set whose holder is
        known dead, or a harness playing the passing of a lease period)."""
        from azure.storage.blob import BlobLeaseClient

        BlobLeaseClient(self._blobs(set_id)[0]).break_lease(lease_break_period=0)

    @staticmethod
    def _mark(set_id: ResourceId, wanted: BlobClient) -> None:
        # Written over: a new ETag tells the holder to look again.
        wanted.upload_blob(b"", overwrite=True, metadata={"scale_set": set_id.value})

    def _passes(
        self,
        set_id: ResourceId,
        lock: BlobClient,
        wanted: BlobClient,
        lease: BlobLeaseClient,
        work: Callable[[], R],
    ) -> Held[R]:
        """Reconcile while holding the lease; again while the mark changed meanwhile. When the
        mark cannot be settled (storage failing, or the passes run out), the result says so: the
        caller leaves a way back."""
        from azure.core.exceptions import AzureError

        result: R
        for _ in range(MAX_PASSES):
            try:
                seen = _etag(wanted)
            except AzureError:
                seen = None  # unknown: any mark found afterwards counts as new
            try:
                with _renewing(lease, self._lease_seconds / 3):
                    result = work()
            finally:
                _release(lease)
            try:
                now = _etag(wanted)
                if now is None or (now == seen and _delete_if_unchanged(wanted, now)):
                    return Held(result, left_marked=False)
                retaken = self._acquire(lock)  # asked for meanwhile: again, unless another host took it
            except AzureError as error:
                log.warning("the mark of %s could not be settled: %s", set_id, error)
                return Held(result, left_marked=True)
            if retaken is None:
                return Held(result, left_marked=False)  # the new holder honours the mark
            lease = retaken
        _release(lease)
        return Held(result, left_marked=True)

    def _blobs(self, set_id: ResourceId) -> tuple[BlobClient, BlobClient]:
        from azure.core.exceptions import ResourceExistsError

        if not self._ready:
            with contextlib.suppress(ResourceExistsError):
                self._container.create_container()
            self._ready = True
        name = hashlib.sha256(set_id.key.encode()).hexdigest()[:40]
        return (
            self._container.get_blob_client(f"{name}.lock"),
            self._container.get_blob_client(f"{name}.wanted"),
        )

    def _acquire(self, lock: BlobClient) -> BlobLeaseClient | None:
        from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
        from azure.storage.blob import BlobLeaseClient

        lease = BlobLeaseClient(lock)
        try:
            lease.acquire(lease_duration=self._lease_seconds)
        except ResourceNotFoundError:  # the set's first reconcile: its lock blob is made once
            with contextlib.suppress(ResourceExistsError):
                lock.upload_blob(b"", overwrite=False)
            return self._acquire(lock)
        except HttpResponseError as error:
            if error.status_code == 409:  # LeaseAlreadyPresent: another holder
                return None
            raise
        return lease


def _release(lease: BlobLeaseClient) -> None:
    from azure.core.exceptions import AzureError

    with contextlib.suppress(AzureError):  # lost or expired: it is free already
        lease.release()


def _etag(blob: BlobClient) -> str | None:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return str(blob.get_blob_properties().etag)
    except ResourceNotFoundError:
        return None


def _delete_if_unchanged(blob: BlobClient, etag: str) -> bool:
    """Delete the mark if nobody wrote it since ``etag``; False if someone did (412)."""
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

    try:
        blob.delete_blob(etag=etag, match_condition=MatchConditions.IfNotModified)
    except ResourceModifiedError:
        return False
    except ResourceNotFoundError:
        return True
    return True


@contextlib.contextmanager
def _renewing(lease: BlobLeaseClient, every_s: float) -> Any:
    """Renew ``lease`` every ``every_s`` seconds while the body runs."""
    stop = threading.Event()

    def renew() -> None:
        from azure.core.exceptions import AzureError

        while not stop.wait(every_s):
            try:
                lease.renew()
            except AzureError as error:  # tried again at the next tick; If-Match guards meanwhile
                log.warning("lease %s could not be renewed: %s", lease.id, error)

    renewer = threading.Thread(target=renew, name="lease-renewer", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
