"""ARM throttling: token buckets per subscription and principal, a global bucket per subscription,
Microsoft.Network's budget, 429 with Retry-After, the headers that say what is left; run fast.

Whether a run outpaces a bucket depends on the machine's speed, so no test here waits on the clock to
count: buckets are set (`set_bucket`, `set_network_budget`), refill is frozen (`freeze_refill`), 429s
are forced (`throttle_next`), or the clocks run at 1/1000 of real time."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from azure.core.rest import HttpRequest
from sim_helpers import (
    CONVENIENT,
    RG,
    SUB,
    StaticCredential,
    make_clients,
    make_jwt,
    owned,
    pip_body,
    principal,
    rid,
)

from sim import ArmSimulator
from sim.limits import Throttle

PIP = "Microsoft.Network/publicIPAddresses"
VM = "Microsoft.Compute/virtualMachines"
NETWORK_API = "2024-05-01"
OTHER_SUB = "00000000-0000-0000-0000-00000000ffff"
# The header ARM's recorded answers carry (the subscription's global bucket), and the caller's own.
GLOBAL_WRITES = "x-ms-ratelimit-remaining-subscription-global-writes"
GLOBAL_READS = "x-ms-ratelimit-remaining-subscription-global-reads"
GLOBAL_DELETES = "x-ms-ratelimit-remaining-subscription-global-deletes"
WRITES = "x-ms-ratelimit-remaining-subscription-writes"
READS = "x-ms-ratelimit-remaining-subscription-reads"
DELETES = "x-ms-ratelimit-remaining-subscription-deletes"


def _jwt_clients(sim: ArmSimulator, appid: str) -> Any:
    return make_clients(sim, StaticCredential(make_jwt({"appid": appid})))


def _send(clients: Any, method: str, path: str, **options: Any) -> Any:
    return clients.network.send_request(HttpRequest(method, f"{path}?api-version={NETWORK_API}"), **options)


def _put_pip(clients: Any, name: str, **options: Any) -> Any:
    request = HttpRequest("PUT", f"{rid(PIP, name)}?api-version={NETWORK_API}", json=pip_body().as_dict())
    return clients.network.send_request(request, **options)


def test_a_burst_of_250_writes_gets_200_then_429_with_retry_after() -> None:
    # Clocks at 1/1000 of real time: no token comes back during the burst, so the count is exact.
    with owned(
        ArmSimulator(**CONVENIENT, throttling=True, time_scale=0.001, lro_duration_s=0.0),
        principal({"appid": "remediator", "oid": "o-1"}),
    ) as sim:
        clients = make_clients(sim, StaticCredential(make_jwt({"appid": "remediator", "oid": "o-1"})))
        answers = [_put_pip(clients, f"pip-{i}", retry_total=0) for i in range(250)]
    statuses = [a.status_code for a in answers]
    assert statuses == [201] * 200 + [429] * 50
    assert answers[0].headers[WRITES] == "199"
    assert answers[199].headers[WRITES] == "0"
    # The subscription's global bucket (15 x 200, every principal's) spent the same 200.
    assert answers[0].headers[GLOBAL_WRITES] == "2999"
    assert answers[199].headers[GLOBAL_WRITES] == "2800"
    throttled = answers[200]
    assert throttled.headers[WRITES] == "0"
    assert throttled.headers[GLOBAL_WRITES] == "2800"  # a 429 spends no token
    # One token at 10/s is 0.1 s, rounded up to ARM's whole second, divided by the time scale.
    assert float(throttled.headers["Retry-After"]) == 1000.0
    error = throttled.json()["error"]
    assert error["code"] == "SubscriptionRequestsThrottled"
    assert f"Number of 'write' requests for subscription '{SUB}' actor 'o-1' exceeded" in error["message"]
    assert "https://aka.ms/arm-throttling" in error["message"]


def test_a_client_honouring_retry_after_completes_every_write() -> None:
    # How often a bucket runs dry depends on the machine's speed, so the 429s are forced instead:
    # exactly `throttled[w]` for writer w, each a principal of its own with fewer writes than its
    # burst. After them a writer's bucket is empty, and a client waiting Retry-After (one token at
    # 10 per simulated second, 0.001 real seconds at scale 1000) finds 10 tokens refilled.
    throttled = [3, 0, 1, 2, 3, 1, 0, 2]
    with owned(
        ArmSimulator(**CONVENIENT, throttling=True, time_scale=1000.0, lro_duration_s=0.0),
        *(principal({"appid": f"writer-{w}"}) for w in range(8)),
    ) as sim:
        outcomes: list[int] = []
        lock = threading.Lock()
        for worker, count in enumerate(throttled):
            sim.throttle_next(f"writer-{worker}", "writes", count)

        def writer(worker: int) -> None:
            token = make_jwt({"appid": f"writer-{worker}"})
            clients = make_clients(sim, StaticCredential(token))  # the SDK's default retry policy
            for i in range(worker, 250, 8):
                answer = _put_pip(clients, f"pip-{i}")
                with lock:
                    outcomes.append(answer.status_code)

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        served = [(r.principal, r.status) for r in sim.requests() if r.method == "PUT"]
    assert sorted(outcomes) == [201] * 250
    assert [status for _, status in served].count(201) == 250
    assert len([1 for _, status in served if status == 429]) == sum(throttled)  # exactly, and waited
    for worker, count in enumerate(throttled):
        mine = [status for principal, status in served if principal == f"writer-{worker}"]
        assert mine[: count + 1] == [429] * count + [201]  # the first writes, then normal answers


def test_throttle_next_answers_as_an_empty_bucket_does_for_one_principal_and_class() -> None:
    # Clocks at 1/1000 of real time: nothing refills during the test, so an empty bucket stays empty.
    with owned(
        ArmSimulator(**CONVENIENT, throttling=True, time_scale=0.001, lro_duration_s=0.0),
        principal({"appid": "app-a", "oid": "o-a"}),
        principal({"appid": "app-b"}),
    ) as sim:
        first = make_clients(sim, StaticCredential(make_jwt({"appid": "app-a", "oid": "o-a"})))
        second = make_clients(sim, StaticCredential(make_jwt({"appid": "app-b"})))
        sim.throttle_next("app-a", "writes", 2)
        forced = [_put_pip(first, f"pip-{i}", retry_total=0) for i in range(2)]
        other = _put_pip(second, "pip-b", retry_total=0)
        get = HttpRequest("GET", f"{rid(PIP, 'pip-b')}?api-version={NETWORK_API}")
        read = first.network.send_request(get, retry_total=0)
        emptied = _put_pip(first, "pip-2", retry_total=0)  # the bucket is empty now, and stays so
    for answer in [*forced, emptied]:
        assert answer.status_code == 429
        assert answer.headers[WRITES] == "0"
        assert float(answer.headers["Retry-After"]) == 1000.0  # ARM's 1 s, divided by the time scale
        error = answer.json()["error"]
        assert error["code"] == "SubscriptionRequestsThrottled"
        assert f"Number of 'write' requests for subscription '{SUB}' actor 'o-a' exceeded" in error["message"]
    assert forced[0].json()["error"]["message"] == emptied.json()["error"]["message"]
    assert other.status_code == 201  # another principal's bucket
    assert other.headers[WRITES] == "199"
    assert other.headers[GLOBAL_WRITES] == "2999"  # the forced answers spent nothing of the global one
    assert read.status_code == 200  # another class of the same principal
    assert read.headers[READS] == "249"
    assert read.headers[GLOBAL_READS] == "3749"


def test_throttle_next_then_normal_answers_in_one_subscription_or_every_one() -> None:
    with owned(
        ArmSimulator(**CONVENIENT, throttling=True, time_scale=1000.0, lro_duration_s=0.0),
        principal({"appid": "app-a"}),
    ) as sim:
        clients = make_clients(sim, StaticCredential(make_jwt({"appid": "app-a"})))
        sim.throttle_next("app-a", "writes", 1, subscription="00000000-0000-0000-0000-00000000ffff")
        assert _put_pip(clients, "elsewhere", retry_total=0).status_code == 201  # not this subscription
        sim.throttle_next("APP-A", "writes", 3, subscription=SUB)
        sim.throttle_next("app-a", "deletes", 1)
        created = clients.network.public_ip_addresses.begin_create_or_update(RG, "pip-t", pip_body()).result()
        clients.network.public_ip_addresses.begin_delete(RG, "pip-t").result()
        statuses = [(r.method, r.status) for r in sim.requests() if r.method in ("PUT", "DELETE")]
        sim.throttle_next("app-a", "reads", 5)
        sim.reset()  # forgets forced answers with the buckets
        get = HttpRequest("GET", f"{rid(PIP, 'none')}?api-version={NETWORK_API}")
        assert clients.network.send_request(get, retry_total=0).status_code == 404
    assert created.name == "pip-t"
    assert statuses == [("PUT", 201)] + [("PUT", 429)] * 3 + [("PUT", 201), ("DELETE", 429), ("DELETE", 202)]


def test_throttle_next_needs_throttling_and_a_request_class() -> None:
    with pytest.raises(ValueError, match="throttling=True"):
        ArmSimulator(throttling=False).throttle_next("app-a", "writes", 1)
    with owned(ArmSimulator(**CONVENIENT, throttling=True)) as throttled:
        with pytest.raises(ValueError, match="'reads', 'writes', 'deletes'"):
            throttled.throttle_next("app-a", "write", 1)
        with pytest.raises(ValueError, match="negative"):
            throttled.throttle_next("app-a", "writes", -1)


def test_buckets_are_per_principal_and_reads_include_operation_polls() -> None:
    with owned(
        ArmSimulator(**CONVENIENT, throttling=True, time_scale=0.001, lro_duration_s=0.0),
        principal({"appid": "app-a"}),
        principal({"appid": "app-b"}),
    ) as sim:
        first = make_clients(sim, StaticCredential(make_jwt({"appid": "app-a"})))
        second = make_clients(sim, StaticCredential(make_jwt({"appid": "app-b"})))
        poller = first.network.public_ip_addresses.begin_create_or_update(RG, "pip-x", pip_body())
        poller.result()
        reads = [r for r in sim.requests() if r.method == "GET"]
        assert reads and all(r.principal == "app-a" for r in reads)  # the status polls
        get = HttpRequest("GET", f"{rid(PIP, 'pip-x')}?api-version={NETWORK_API}")
        mine = first.network.send_request(get).headers
        assert int(mine[READS]) == 250 - len(reads) - 1
        other = second.network.send_request(get).headers
        assert other[READS] == "249"
        assert int(other[GLOBAL_READS]) == 3750 - len(reads) - 2  # both principals' reads
        delete = HttpRequest("DELETE", f"{rid(PIP, 'pip-x')}?api-version={NETWORK_API}")
        answer = second.network.send_request(delete)
        assert answer.headers[DELETES] == "199"
        assert answer.headers[GLOBAL_DELETES] == "2999"
        assert READS not in answer.headers and WRITES not in answer.headers  # only its own class


def test_microsoft_network_allows_1000_writes_per_5_minutes() -> None:
    with owned(
        ArmSimulator(**CONVENIENT, throttling=True, time_scale=0.001, lro_duration_s=0.0),
        *(principal({"appid": f"app-{a}"}) for a in range(6)),
    ) as sim:
        # Six principals, so ARM's per-principal buckets (200 each) are not what stops them.
        statuses: list[int] = []
        for app in range(6):
            clients = make_clients(sim, StaticCredential(make_jwt({"appid": f"app-{app}"})))
            statuses += [_put_pip(clients, f"p{app}-{i}", retry_total=0).status_code for i in range(180)]
        last = _put_pip(clients, "one-more", retry_total=0)
    assert statuses.count(201) == 1000 and statuses.count(429) == 80
    assert last.status_code == 429
    assert "'Microsoft.Network' exceeded the limit of '1000'" in last.json()["error"]["message"]
    assert "Retry-After" in last.headers


def test_throttling_is_on_by_default(sim: ArmSimulator, clients: Any) -> None:
    assert ArmSimulator().settings.throttling  # adversarial unless told otherwise
    clients.network.public_ip_addresses.begin_create_or_update(RG, "pip-d", pip_body()).result()
    answer = _send(clients, "GET", rid(PIP, "pip-d"))  # the session's simulator, built with defaults
    assert answer.status_code == 200
    assert answer.headers[GLOBAL_READS].isdigit() and answer.headers[READS].isdigit()
    with owned(ArmSimulator(throttling=False)) as unthrottled:
        answer = _send(make_clients(unthrottled), "GET", rid(PIP, "none"))
        assert answer.status_code == 404
        assert not [name for name in answer.headers if name.lower().startswith("x-ms-ratelimit-")]
        for needs_buckets in (
            lambda: unthrottled.set_bucket("app-a", "writes", 1),
            lambda: unthrottled.bucket_level("app-a", "writes", SUB),
            lambda: unthrottled.set_network_budget(SUB, 1),
            unthrottled.freeze_refill,
        ):
            with pytest.raises(ValueError, match="throttling=True"):
                needs_buckets()


def test_set_bucket_sets_a_level_exactly_and_bucket_level_reads_it() -> None:
    with owned(ArmSimulator(**CONVENIENT, lro_duration_s=0.0), principal({"appid": "app-a"})) as sim:
        sim.freeze_refill()  # nothing refills, however slow the machine
        clients = _jwt_clients(sim, "app-a")
        assert sim.bucket_level("app-a", "writes", SUB) == 200  # not used yet: full
        sim.set_bucket("app-a", "writes", 2, subscription=SUB)
        answers = [_put_pip(clients, f"pip-{i}", retry_total=0) for i in range(3)]
        assert [a.status_code for a in answers] == [201, 201, 429]
        assert [a.headers[WRITES] for a in answers] == ["1", "0", "0"]
        assert [a.headers[GLOBAL_WRITES] for a in answers] == ["2999", "2998", "2998"]
        assert answers[2].headers["Retry-After"] == "1"  # one token at 10 per s, in ARM's whole seconds
        assert sim.bucket_level("app-a", "writes", SUB) == 0
        assert sim.bucket_level(None, "writes", SUB) == 2998  # the subscription's global bucket
        assert sim.bucket_level("app-a", "reads", SUB) == 250  # another class: untouched
        sim.set_bucket("app-a", "writes", 200, subscription=SUB)  # a drained bucket set full again
        assert _put_pip(clients, "pip-again", retry_total=0).headers[WRITES] == "199"
        with pytest.raises(ValueError, match="capacity 200"):
            sim.set_bucket("app-a", "writes", 201, subscription=SUB)
        with pytest.raises(ValueError, match="'reads', 'writes', 'deletes'"):
            sim.set_bucket("app-a", "write", 1, subscription=SUB)
        with pytest.raises(ValueError, match="subscription"):
            sim.set_bucket(None, "writes", 1)
        sim.reset()  # forgets the levels and the freeze
        assert sim.bucket_level("app-a", "writes", SUB) == 200


def test_set_bucket_without_a_subscription_sets_every_subscription_of_the_principal() -> None:
    with owned(ArmSimulator(**CONVENIENT, lro_duration_s=0.0), principal({"appid": "app-a"})) as sim:
        sim.freeze_refill()
        clients = _jwt_clients(sim, "app-a")
        assert _send(clients, "DELETE", rid(VM, "none")).status_code == 204  # a bucket in use...
        sim.set_bucket("App-A", "deletes", 1)  # ...and those not used yet, in any subscription
        assert sim.bucket_level("app-a", "deletes", SUB) == 1
        assert sim.bucket_level("app-a", "deletes", OTHER_SUB) == 1
        first = _send(clients, "DELETE", rid(VM, "none"), retry_total=0)
        second = _send(clients, "DELETE", rid(VM, "none"), retry_total=0)
        assert (first.status_code, first.headers[DELETES], second.status_code) == (204, "0", 429)
        assert sim.bucket_level("app-a", "deletes", OTHER_SUB) == 1  # buckets stay per subscription


def test_the_global_bucket_is_shared_by_every_principal() -> None:
    with owned(
        ArmSimulator(**CONVENIENT, lro_duration_s=0.0),
        principal({"appid": "app-a"}),
        principal({"appid": "app-b"}),
    ) as sim:
        sim.freeze_refill()
        sim.set_bucket(None, "writes", 1, subscription=SUB)
        first = _put_pip(_jwt_clients(sim, "app-a"), "pip-a", retry_total=0)
        second = _put_pip(_jwt_clients(sim, "app-b"), "pip-b", retry_total=0)
    assert first.status_code == 201 and first.headers[GLOBAL_WRITES] == "0"
    assert second.status_code == 429
    assert second.headers[GLOBAL_WRITES] == "0" and second.headers[WRITES] == "200"  # its own is full
    error = second.json()["error"]
    assert (
        error["code"] == "SubscriptionRequestsThrottled" and "global subscription limit" in error["message"]
    )
    assert "Retry-After" in second.headers


def test_set_network_budget_sets_microsoft_networks_write_budget() -> None:
    with owned(ArmSimulator(**CONVENIENT, lro_duration_s=0.0), principal({"appid": "app-a"})) as sim:
        sim.freeze_refill()
        clients = _jwt_clients(sim, "app-a")
        assert sim.network_budget_level(SUB) == 1000
        sim.set_network_budget(SUB, 1)
        created = _put_pip(clients, "pip-1", retry_total=0)
        refused = _put_pip(clients, "pip-2", retry_total=0)
        read = _send(clients, "GET", rid(PIP, "pip-1"), retry_total=0)  # reads are not in the budget
        compute = _send(clients, "DELETE", rid(VM, "none"), retry_total=0)  # nor Compute's writes
        assert sim.network_budget_level(SUB) == 0
        assert sim.network_budget_level(OTHER_SUB) == 1000
        with pytest.raises(ValueError, match="capacity 1000"):
            sim.set_network_budget(SUB, 1001)
    assert created.status_code == 201
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert "'Microsoft.Network' exceeded the limit of '1000'" in refused.json()["error"]["message"]
    assert refused.headers[WRITES] == "199"  # ARM's own buckets were not what refused it
    assert read.status_code == 200 and compute.status_code == 204


def test_requests_without_a_subscription_report_the_tenant_bucket(sim: ArmSimulator, clients: Any) -> None:
    body = {"subscriptions": [SUB], "query": "resources | project id", "options": {}}
    answer = clients.compute.send_request(
        HttpRequest("POST", "/providers/Microsoft.ResourceGraph/resources?api-version=2022-10-01", json=body)
    )
    assert answer.status_code == 200
    assert answer.headers["x-ms-ratelimit-remaining-tenant-writes"] == "199"
    assert not [name for name in answer.headers if "-subscription-" in name.lower()]


def test_the_gateways_404_carries_no_rate_limit_header(sim: ArmSimulator, clients: Any) -> None:
    sim.freeze_refill()
    answer = _send(clients, "GET", rid(PIP, "none"))
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "ResourceNotFound"
    assert answer.headers["x-ms-failure-cause"] == "gateway"  # as recorded from Azure
    assert not [name for name in answer.headers if name.lower().startswith("x-ms-ratelimit-")]
    # The simulator's choice (the recordings cannot tell): the request still spent a read.
    assert sim.bucket_level(ArmSimulator.principal_of(StaticCredential().token), "reads", SUB) == 249


class _Clock:
    """Real seconds for a Throttle, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_frozen_refill_never_counts_the_frozen_time() -> None:
    clock = _Clock()
    throttle = Throttle(time_scale=2.0, clock=clock)
    throttle.set_bucket("app-a", "writes", 0, subscription=SUB)
    clock.now += 0.5  # one simulated second: 10 tokens
    assert throttle.bucket_level("app-a", "writes", SUB) == 10
    throttle.freeze_refill()
    clock.now += 100
    assert throttle.bucket_level("app-a", "writes", SUB) == 10 and throttle.frozen
    throttle.set_bucket("app-a", "writes", 3, subscription=SUB)  # a level can be set while frozen
    throttle.freeze_refill(False)
    assert throttle.bucket_level("app-a", "writes", SUB) == 3  # the frozen 100 s refilled nothing
    clock.now += 0.25
    assert throttle.bucket_level("app-a", "writes", SUB) == 8  # then the normal rate again
    throttle.set_network_budget(SUB, 0)
    clock.now += 150  # 300 simulated seconds: the whole budget back
    assert throttle.network_budget(SUB) == 1000
    assert throttle.bucket_level(None, "reads", SUB) == 3750  # the global one: 15 x 250
