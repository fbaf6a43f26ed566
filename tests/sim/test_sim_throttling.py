"""ARM throttling: token buckets per subscription and principal, 429 with Retry-After, run fast."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from azure.core.rest import HttpRequest
from sim_helpers import RG, SUB, StaticCredential, make_clients, make_jwt, owned, pip_body, principal, rid

from sim import ArmSimulator

PIP = "Microsoft.Network/publicIPAddresses"
NETWORK_API = "2024-05-01"


def _put_pip(clients: Any, name: str, **options: Any) -> Any:
    request = HttpRequest("PUT", f"{rid(PIP, name)}?api-version={NETWORK_API}", json=pip_body().as_dict())
    return clients.network.send_request(request, **options)


def test_a_burst_of_250_writes_gets_200_then_429_with_retry_after() -> None:
    # Clocks at 1/1000 of real time: no token comes back during the burst, so the count is exact.
    with owned(
        ArmSimulator(throttling=True, time_scale=0.001, lro_duration_s=0.0),
        principal({"appid": "remediator", "oid": "o-1"}),
    ) as sim:
        clients = make_clients(sim, StaticCredential(make_jwt({"appid": "remediator", "oid": "o-1"})))
        answers = [_put_pip(clients, f"pip-{i}", retry_total=0) for i in range(250)]
    statuses = [a.status_code for a in answers]
    assert statuses == [201] * 200 + [429] * 50
    assert answers[0].headers["x-ms-ratelimit-remaining-subscription-writes"] == "199"
    assert answers[199].headers["x-ms-ratelimit-remaining-subscription-writes"] == "0"
    throttled = answers[200]
    assert throttled.headers["x-ms-ratelimit-remaining-subscription-writes"] == "0"
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
        ArmSimulator(throttling=True, time_scale=1000.0, lro_duration_s=0.0),
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
        ArmSimulator(throttling=True, time_scale=0.001, lro_duration_s=0.0),
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
        assert answer.headers["x-ms-ratelimit-remaining-subscription-writes"] == "0"
        assert float(answer.headers["Retry-After"]) == 1000.0  # ARM's 1 s, divided by the time scale
        error = answer.json()["error"]
        assert error["code"] == "SubscriptionRequestsThrottled"
        assert f"Number of 'write' requests for subscription '{SUB}' actor 'o-a' exceeded" in error["message"]
    assert forced[0].json()["error"]["message"] == emptied.json()["error"]["message"]
    assert other.status_code == 201  # another principal's bucket
    assert other.headers["x-ms-ratelimit-remaining-subscription-writes"] == "199"
    assert read.status_code == 200  # another class of the same principal
    assert read.headers["x-ms-ratelimit-remaining-subscription-reads"] == "249"


def test_throttle_next_then_normal_answers_in_one_subscription_or_every_one() -> None:
    with owned(
        ArmSimulator(throttling=True, time_scale=1000.0, lro_duration_s=0.0), principal({"appid": "app-a"})
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


def test_throttle_next_needs_throttling_and_a_request_class(sim: ArmSimulator) -> None:
    with pytest.raises(ValueError, match="throttling=True"):
        sim.throttle_next("app-a", "writes", 1)
    with owned(ArmSimulator(throttling=True)) as throttled:
        with pytest.raises(ValueError, match="'reads', 'writes', 'deletes'"):
            throttled.throttle_next("app-a", "write", 1)
        with pytest.raises(ValueError, match="negative"):
            throttled.throttle_next("app-a", "writes", -1)


def test_buckets_are_per_principal_and_reads_include_operation_polls() -> None:
    with owned(
        ArmSimulator(throttling=True, time_scale=0.001, lro_duration_s=0.0),
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
        remaining = first.network.send_request(get).headers["x-ms-ratelimit-remaining-subscription-reads"]
        assert int(remaining) == 250 - len(reads) - 1
        other = second.network.send_request(get).headers["x-ms-ratelimit-remaining-subscription-reads"]
        assert other == "249"
        delete = HttpRequest("DELETE", f"{rid(PIP, 'pip-x')}?api-version={NETWORK_API}")
        answer = second.network.send_request(delete)
        assert answer.headers["x-ms-ratelimit-remaining-subscription-deletes"] == "199"


def test_microsoft_network_allows_1000_writes_per_5_minutes() -> None:
    with owned(
        ArmSimulator(throttling=True, time_scale=0.001, lro_duration_s=0.0),
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


def test_throttling_is_off_by_default(sim: ArmSimulator) -> None:
    clients = make_clients(sim)
    answer = clients.network.send_request(HttpRequest("GET", f"{rid(PIP, 'none')}?api-version={NETWORK_API}"))
    assert answer.status_code == 404
    assert "x-ms-ratelimit-remaining-subscription-reads" not in answer.headers
