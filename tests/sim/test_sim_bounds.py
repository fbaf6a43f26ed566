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


def test_the_simulator_bounds_a_storm_with_its_own_buckets_as_they_stand() -> None:
    from sim_helpers import CONVENIENT, SUB, owned

    from sim import ArmSimulator

    with owned(ArmSimulator(provision_delay_s=1.1, **CONVENIENT)) as sim:
        sim.freeze_refill()  # the levels read are exactly the ones set
        free = sim.storm_bound(instances=10, principal="app-a", subscription=SUB)
        assert free.exposure_s == (0.0,) * 10  # full buckets: each NIC written as it appears
        assert free.total_s == pytest.approx(1.0)  # the last of 10 appears at 10/11 of 1.1 s
        sim.set_network_budget(SUB, 0)
        starved = sim.storm_bound(instances=10, principal="app-a", subscription=SUB)
        # 20 Microsoft.Network writes (10 detaches, 10 deletes) at 1,000 per 300 s from empty.
        assert starved.total_s == pytest.approx(20 * 0.3)
        given = sim.storm_bound(instances=2, principal="app-a", subscription=SUB, nic_created=[0.0, 0.0])
        assert given.total_s == pytest.approx(4 * 0.3)
    with owned(ArmSimulator(throttling=False, **CONVENIENT)) as unbounded, pytest.raises(ValueError):
        unbounded.storm_bound(instances=1, principal="app-a", subscription=SUB)
