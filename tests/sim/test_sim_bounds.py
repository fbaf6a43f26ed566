"""The lower bound a workload can reach under the simulator's limits (sim/bounds.py): a perfect
client's figures, worked out by hand for small cases and for the 500-instance storm."""

from __future__ import annotations

import pytest

from sim.bounds import Budget, storm_bound


def full(capacity: float, refill: float) -> Budget:
    return Budget(capacity, refill, capacity)


def test_a_storm_within_the_burst_is_bounded_by_nothing_but_its_nics() -> None:
    bound = storm_bound(0.0, [1.0, 2.0, 3.0], full(200, 10), full(200, 10))
    assert bound.exposure_s == (0.0, 0.0, 0.0)
    assert bound.total_s == 3.0


def test_500_nics_at_once_drain_the_write_bucket_at_its_refill_rate() -> None:
    # ARM's buckets: 200 burst, 10 per second. The 201st detach waits 0.1 s, the 500th 30 s; each
    # delete follows its detach (its own bucket has the same shape), so the last ends at 30 s too.
    bound = storm_bound(0.0, [0.0] * 500, full(200, 10), full(200, 10), full(1000, 1000 / 300))
    assert bound.exposure_s[199] == 0.0
    assert bound.exposure_s[200] == pytest.approx(0.1)
    assert max(bound.exposure_s) == pytest.approx(30.0)
    assert bound.median_s == pytest.approx(5.0, abs=0.1)
    assert bound.total_s == pytest.approx(30.0)


def test_microsoft_network_s_budget_binds_when_puts_and_deletes_exceed_it_together() -> None:
    # 600 detaches and 600 deletes: 1,200 network operations against 1,000 per 5 minutes. The last
    # 200 wait for the network's refill (0.3 s each): the last deletion lands at 60 s, not 40 s.
    bound = storm_bound(0.0, [0.0] * 600, full(200, 10), full(200, 10), full(1000, 1000 / 300))
    assert bound.total_s == pytest.approx(60.0, abs=0.5)


def test_a_bucket_already_spent_delays_even_the_first_write() -> None:
    bound = storm_bound(0.0, [0.0], Budget(0, 10, 200), full(200, 10))
    assert bound.exposure_s[0] == pytest.approx(0.1)
