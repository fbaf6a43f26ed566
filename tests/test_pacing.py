"""Client-side pacing (remediation/pacing.py): a request waits its turn in a local copy of ARM's
buckets, which ARM's own answers correct. Given these requests on a frozen clock, this is how long
each is told to wait; no test here depends on the machine's speed."""

from __future__ import annotations

import pytest

from remediation.pacing import Pacer, scope_of

SUB = "00000000-0000-0000-0000-00000000aaaa"
NIC = (
    f"https://arm.local/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/n"
)
PIP = (
    f"https://arm.local/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/publicIPAddresses/p"
)
VMSS = f"https://arm.local/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/s"


class FrozenClock:
    """Time stands still unless a test moves it; a sleep is noted, not slept."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def pacer(clock: FrozenClock) -> Pacer:
    return Pacer(clock=lambda: clock.now, sleep=clock.sleep)


def test_the_burst_goes_at_once_and_the_rest_at_the_refill_rate(pacer: Pacer, clock: FrozenClock) -> None:
    for _ in range(200):
        pacer.before("PUT", NIC)
    assert clock.slept == [], "ARM's write bucket holds 200"
    pacer.before("PUT", NIC)
    pacer.before("PUT", NIC)
    assert clock.slept == pytest.approx([0.1, 0.2]), "then 10 per second, each told its own turn"


def test_reads_writes_and_deletes_have_buckets_of_their_own(pacer: Pacer, clock: FrozenClock) -> None:
    for _ in range(200):
        pacer.before("PUT", NIC)
    pacer.before("GET", NIC)
    pacer.before("DELETE", PIP)
    assert clock.slept == []


def test_microsoft_network_s_budget_is_shared_by_nic_puts_and_public_ip_deletes(
    pacer: Pacer, clock: FrozenClock
) -> None:
    # 600 NIC PUTs and 600 public IP DELETEs at once. ARM's write and delete buckets each let the
    # last go at (600 - 200) / 10 = 40 s; Microsoft.Network's 1,000 per 5 minutes, shared by both,
    # only at (1200 - 1000) / (1000 / 300) = 60 s.
    for _ in range(600):
        pacer.before("PUT", NIC)
        pacer.before("DELETE", PIP)
    assert max(clock.slept) == pytest.approx(60.0)
    pacer.before("PATCH", VMSS)
    assert clock.slept[-1] == pytest.approx(40.1), "a Compute write waits for ARM's write bucket only"


def test_arm_s_remaining_count_replaces_the_local_guess(pacer: Pacer, clock: FrozenClock) -> None:
    ticket = pacer.before("PUT", NIC)
    pacer.after(ticket, 200, {"x-ms-ratelimit-remaining-subscription-writes": "3"})
    for _ in range(3):
        pacer.before("PUT", NIC)
    assert clock.slept == [], "three left, as ARM said"
    pacer.before("PUT", NIC)
    assert clock.slept == pytest.approx([0.1])


def test_the_count_is_less_our_requests_still_unanswered(pacer: Pacer, clock: FrozenClock) -> None:
    first = pacer.before("PUT", NIC)
    pacer.before("PUT", NIC)  # sent, not answered yet: ARM may not have counted it
    pacer.after(first, 200, {"x-ms-ratelimit-remaining-subscription-writes": "2"})
    pacer.before("PUT", NIC)
    assert clock.slept == []
    pacer.before("PUT", NIC)
    assert clock.slept == pytest.approx([0.1])


def test_a_429_empties_the_bucket_until_its_retry_after(pacer: Pacer, clock: FrozenClock) -> None:
    ticket = pacer.before("PATCH", VMSS)
    pacer.after(ticket, 429, {"retry-after": "3"})
    pacer.before("PATCH", VMSS)
    assert clock.slept == pytest.approx([3.1]), "3 s, then one token at 10 per second"


def test_the_subscription_s_shared_count_only_ever_lowers_the_guess(pacer: Pacer, clock: FrozenClock) -> None:
    # The global bucket is every principal's (15 times ours): plenty left there says nothing of ours.
    ticket = pacer.before("PUT", NIC)
    pacer.after(ticket, 200, {"x-ms-ratelimit-remaining-subscription-global-writes": "2999"})
    for _ in range(199):
        pacer.before("PUT", NIC)
    assert clock.slept == []
    pacer.before("PUT", NIC)
    assert clock.slept == pytest.approx([0.1]), "still our own 200"
    ticket = pacer.before("DELETE", PIP)
    pacer.after(ticket, 200, {"x-ms-ratelimit-remaining-subscription-global-deletes": "0"})
    pacer.before("DELETE", PIP)
    assert clock.slept[-1] == pytest.approx(0.1), "but nothing left there is nothing left for us"


def test_a_429_from_microsoft_network_holds_its_budget_and_not_arm_s(
    pacer: Pacer, clock: FrozenClock
) -> None:
    # The provider refused it with tokens still in our ARM bucket: its own budget is what is spent.
    ticket = pacer.before("DELETE", PIP)
    pacer.after(ticket, 429, {"retry-after": "3", "x-ms-ratelimit-remaining-subscription-deletes": "150"})
    pacer.before("GET", PIP)
    pacer.before("PATCH", VMSS)
    assert clock.slept == [], "reads and Compute writes go on"
    pacer.before("DELETE", PIP)
    assert clock.slept == pytest.approx([3 + 300 / 1000]), "3 s, then one token at 1,000 per 5 minutes"


def test_a_429_whose_message_names_microsoft_network_holds_its_budget_without_the_callers_count(
    pacer: Pacer, clock: FrozenClock
) -> None:
    # As recorded from Azure: only the subscription's global count, never the caller's own.
    ticket = pacer.before("DELETE", PIP)
    message = (
        '{"error": {"code": "SubscriptionRequestsThrottled", "message": "Number of write requests for '
        "subscription 's' and resource provider 'Microsoft.Network' exceeded the limit\"}}"
    )
    pacer.after(
        ticket,
        429,
        {"retry-after": "3", "x-ms-ratelimit-remaining-subscription-global-deletes": "2990"},
        message,
    )
    pacer.before("GET", PIP)
    pacer.before("PATCH", VMSS)
    assert clock.slept == [], "reads and Compute writes go on: ARM's buckets were not what refused it"
    pacer.before("DELETE", PIP)
    assert clock.slept == pytest.approx([3 + 300 / 1000]), "3 s, then one token at 1,000 per 5 minutes"


def test_a_429_from_arm_s_bucket_leaves_microsoft_network_s_burst_alone(
    pacer: Pacer, clock: FrozenClock
) -> None:
    # Held to ARM's 10 per second after forty 429s, the network's 1,000 are not spent waiting.
    for _ in range(40):
        ticket = pacer.before("PUT", NIC)
        pacer.after(ticket, 429, {"retry-after": "1", "x-ms-ratelimit-remaining-subscription-writes": "0"})
    clock.slept.clear()
    clock.now += 10.0  # ARM's write bucket: 49 owed, 100 refilled
    for _ in range(40):
        ticket = pacer.before("PUT", NIC)
        pacer.after(ticket, 200, {})
    assert clock.slept == [], "the network budget still has its burst"


def test_a_request_that_may_not_wait_goes_at_once_and_takes_nothing(pacer: Pacer, clock: FrozenClock) -> None:
    for _ in range(250):
        pacer.before("GET", NIC)
    impatient = pacer.before("GET", NIC, max_wait_s=0.01)
    assert clock.slept == [], "its turn would be 0.04 s away: it goes now"
    pacer.after(impatient, 200, {})  # and its answer moves nothing: it held no reservation
    pacer.before("GET", NIC)
    assert clock.slept == pytest.approx([0.04]), "the next one's turn is where the impatient one's was"


def test_scope_is_read_from_the_url() -> None:
    assert scope_of(NIC) == (SUB, "Microsoft.Network")
    assert scope_of("https://arm.local/providers/Microsoft.ResourceGraph/resources?api-version=1") == (
        "",
        "Microsoft.ResourceGraph",
    )
    status = (
        f"https://arm.local/subscriptions/{SUB}/providers/Microsoft.Network/locations/eastus/operations/x"
    )
    assert scope_of(status) == (SUB, "Microsoft.Network")
