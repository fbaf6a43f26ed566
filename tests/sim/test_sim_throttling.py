"""ARM throttling: token buckets per subscription and principal, 429 with Retry-After, run fast."""

from __future__ import annotations

import threading
from typing import Any

from azure.core.rest import HttpRequest
from sim_helpers import RG, SUB, StaticCredential, make_clients, make_jwt, pip_body, rid

from sim import ArmSimulator

PIP = "Microsoft.Network/publicIPAddresses"
NETWORK_API = "2024-05-01"


def _put_pip(clients: Any, name: str, **options: Any) -> Any:
    request = HttpRequest("PUT", f"{rid(PIP, name)}?api-version={NETWORK_API}", json=pip_body().as_dict())
    return clients.network.send_request(request, **options)


def test_a_burst_of_250_writes_gets_200_then_429_with_retry_after() -> None:
    # Clocks at 1/1000 of real time: no token comes back during the burst, so the count is exact.
    with ArmSimulator(throttling=True, time_scale=0.001, lro_duration_s=0.0) as sim:
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
    with ArmSimulator(throttling=True, time_scale=5.0, lro_duration_s=0.0) as sim:
        token = make_jwt({"appid": "remediator"})
        outcomes: list[int] = []
        lock = threading.Lock()

        def writer(worker: int) -> None:
            clients = make_clients(sim, StaticCredential(token))  # the SDK's default retry policy
            for i in range(worker, 250, 8):
                answer = _put_pip(clients, f"pip-{i}")
                with lock:
                    outcomes.append(answer.status_code)

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        served = [r.status for r in sim.requests() if r.method == "PUT"]
    assert sorted(outcomes) == [201] * 250
    assert served.count(201) == 250
    assert served.count(429) > 0  # the client was throttled, and waited


def test_buckets_are_per_principal_and_reads_include_operation_polls() -> None:
    with ArmSimulator(throttling=True, time_scale=0.001, lro_duration_s=0.0) as sim:
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
    with ArmSimulator(throttling=True, time_scale=0.001, lro_duration_s=0.0) as sim:
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
