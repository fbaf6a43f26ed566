"""What ARM's lists and Resource Graph answer from: a view that lags the writes.

Azure's reads by id are served from the resource provider's own state, but its lists come from
caches and indexes that catch up later: a VM a scale set has just created may be missing from
`virtualMachines.list` for a while, one just deleted may still be listed, and an updated one listed
as it was. Resource Graph documents the same for its index (changes can take up to a minute to
show). A remediator that trusts a list as the truth misses, or acts on ghosts; the simulator makes
it meet both by default.

Each resource keeps a short history of (time, snapshot or None for "deleted") in simulated
seconds; a view `lag_s` behind answers, for each resource, the newest version at least `lag_s`
old. History older than the largest lag is pruned down to the one version such a view still needs.
Pure bookkeeping, no lock of its own: the store calls it with its lock held.
"""

from __future__ import annotations

import bisect
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

JsonDict = dict[str, Any]
# Before any clock reading: a version that every view shows (a seeded estate has been there a while).
LONG_AGO = float("-inf")


@dataclass
class _Versions:
    seq: int  # creation order (lists are oldest first)
    times: list[float] = field(default_factory=list)
    docs: list[JsonDict | None] = field(default_factory=list)

    def at(self, cutoff: float) -> JsonDict | None:
        """The newest version at or before `cutoff` (None: not there then)."""
        index = bisect.bisect_right(self.times, cutoff) - 1
        return self.docs[index] if index >= 0 else None


class LaggingView:
    """Per-resource history of documents, read as of some seconds ago."""

    def __init__(self) -> None:
        self._versions: dict[str, _Versions] = {}

    def reset(self) -> None:
        self._versions.clear()

    def record(self, key: str, at: float, doc: JsonDict | None, seq: int) -> None:
        """`doc` (None: deleted) is the resource's state from `at` on; a copy is kept. Nothing is
        recorded when it equals the newest version (so a no-op commit adds no history)."""
        versions = self._versions.get(key)
        if versions is None:
            if doc is None:
                return
            versions = self._versions[key] = _Versions(seq)
        elif versions.docs[-1] is None and doc is not None:
            versions.seq = seq  # created again: it lists where a new resource lists
        if versions.docs and versions.docs[-1] == doc:
            return
        snapshot = copy.deepcopy(doc) if doc is not None else None
        if at == LONG_AGO:  # a seed replaces the history
            versions.times, versions.docs = [at], [snapshot]
            return
        at = max(at, versions.times[-1]) if versions.times else at
        versions.times.append(at)
        versions.docs.append(snapshot)

    def as_of(self, cutoff: float) -> Iterator[tuple[str, JsonDict]]:
        """(key, document) of every resource that existed at `cutoff`, as it was then, oldest
        first. The documents are the view's own: copy before changing them."""
        found = [
            (versions.seq, key, doc)
            for key, versions in self._versions.items()
            if (doc := versions.at(cutoff)) is not None
        ]
        found.sort(key=lambda item: item[0])
        for _, key, doc in found:
            yield key, doc

    def prune(self, horizon: float) -> None:
        """Forget versions no view at or after `horizon` can show."""
        for key in list(self._versions):
            versions = self._versions[key]
            keep_from = max(bisect.bisect_right(versions.times, horizon) - 1, 0)
            if keep_from:
                del versions.times[:keep_from]
                del versions.docs[:keep_from]
            if len(versions.docs) == 1 and versions.docs[0] is None:
                del self._versions[key]

    def __len__(self) -> int:
        return len(self._versions)
