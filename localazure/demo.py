"""`localazure demo` (`make demo`): the remediator end to end against the local stand-in.

Builds what a team without NAT gateway, load balancer or firewall builds: a Flexible scale set
with a public IP per instance and capacity 0, restricted by its tag, with two VMs attached by
hand without public IPs. Then it scales the set out by 10 as autoscale would. Every ARM write
emits its Event Grid event; a delivery thread hands each one, as Event Grid would (its deadline and
retries, ``localazure.eventgrid``), to one of two host processes (``localazure.functions_host``)
running the real functions (``function_app.app``, indexed): Event Grid's trigger hands the set to
the work queue, whose trigger, on either host, reconciles it. At the end it shows, per instance,
what happened, and the audit log, and exits non-zero if any scale-set-created instance still has
a public IP or a hand-added VM was written to.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, TextIO

from localazure.azurite import PROJECT_ROOT, Azurite
from localazure.eventgrid import EventGridPlayer
from localazure.functions_host import HostPool
from localazure.stack import ESTATE_SUBSCRIPTION, LocalAzure, estate_owner
from remediation.audit import AuditLog
from remediation.credentials import LoopbackCredential
from remediation.events import HANDLED_OPERATIONS, WRITE_SUCCESS
from remediation.model import RecordKind
from remediation.records import AuditRecord
from remediation.resource_ids import ResourceId
from remediation.review import render_summary, render_table, summarise

# Where the demo keeps Azurite's data, so its audit log can be reviewed after it ends.
DEMO_STORAGE = PROJECT_ROOT / ".demo" / "azurite"
DEMO_AUDIT_TABLE = "demoaudit"
SUBSCRIPTION = ESTATE_SUBSCRIPTION
GROUP = "rg-restricted-demo"
LOCATION = "westeurope"
SET_NAME = "vmss-restricted"
HAND_ADDED = ("app-vm-01", "app-vm-02")
SCALE_OUT = 10
SUBNET = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.Network/"
    "virtualNetworks/vnet-demo/subnets/default"
)


def scale_set_body(capacity: int) -> dict[str, Any]:
    """What `az vmss create --orchestration-mode Flexible --public-ip-per-vm --instance-count 0` sends."""
    return {
        "location": LOCATION,
        "tags": {"remediation.mode": "strip"},
        "sku": {"name": "Standard_D2s_v5", "tier": "Standard", "capacity": capacity},
        "properties": {
            "orchestrationMode": "Flexible",
            "platformFaultDomainCount": 1,
            "singlePlacementGroup": False,
            "virtualMachineProfile": {
                "osProfile": {"computerNamePrefix": "restr", "adminUsername": "azureuser"},
                "storageProfile": {
                    "imageReference": {
                        "publisher": "Canonical",
                        "offer": "ubuntu-24_04-lts",
                        "sku": "server",
                        "version": "latest",
                    }
                },
                "networkProfile": {
                    "networkApiVersion": "2020-11-01",
                    "networkInterfaceConfigurations": [
                        {
                            "name": "restr-nic",
                            "properties": {
                                "primary": True,
                                "ipConfigurations": [
                                    {
                                        "name": "ipconfig1",
                                        "properties": {
                                            "primary": True,
                                            "subnet": {"id": SUBNET},
                                            "publicIPAddressConfiguration": {
                                                "name": "publicip",
                                                "sku": {"name": "Standard", "tier": "Regional"},
                                                "properties": {"idleTimeoutInMinutes": 15},
                                            },
                                        },
                                    }
                                ],
                            },
                        }
                    ],
                },
            },
        },
    }


def matches_subscription_filter(event: Mapping[str, Any]) -> bool:
    """The event subscription's filter (infra/): ResourceWriteSuccess, data.operationName StringIn [...]."""
    data = event.get("data")
    operation = data.get("operationName") if isinstance(data, Mapping) else None
    return (
        event.get("eventType") == WRITE_SUCCESS
        and isinstance(operation, str)
        and operation.lower() in HANDLED_OPERATIONS
    )


class EventGridDelivery:
    """Delivers simulator events to the hosts one by one, as Event Grid does (``EventGridPlayer``)."""

    def __init__(self, deliver: Callable[[dict[str, Any]], None], attempts: int = 5) -> None:
        self._player = EventGridPlayer(deliver, max_attempts=attempts)
        self._queue: queue.Queue[Mapping[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="eventgrid-delivery", daemon=True)
        self.delivered = 0
        self.failures: list[str] = []

    def start(self) -> None:
        self._thread.start()

    def publish(self, event: Mapping[str, Any]) -> None:
        if matches_subscription_filter(event):
            self._queue.put(event)

    def drain(self) -> None:
        self._queue.join()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            try:
                if event is None:
                    return
                self._deliver_with_retries(event)
            finally:
                self._queue.task_done()

    def _deliver_with_retries(self, event: Mapping[str, Any]) -> None:
        delivery = self._player.deliver(event)
        if delivery.attempts[-1].outcome == "Delivered":
            self.delivered += 1
        else:
            self.failures.append(
                f"{event.get('id')}: {delivery.attempts[-1].outcome} {len(delivery.attempts)} times"
            )


def build_estate(compute: Any, network: Any) -> None:
    compute.virtual_machine_scale_sets.begin_create_or_update(GROUP, SET_NAME, scale_set_body(0)).result()
    set_id = (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/"
        f"Microsoft.Compute/virtualMachineScaleSets/{SET_NAME}"
    )
    for name in HAND_ADDED:
        nic = network.network_interfaces.begin_create_or_update(
            GROUP,
            f"{name}-nic",
            {
                "location": LOCATION,
                "properties": {
                    "ipConfigurations": [
                        {"name": "ipconfig1", "properties": {"primary": True, "subnet": {"id": SUBNET}}}
                    ]
                },
            },
        ).result()
        compute.virtual_machines.begin_create_or_update(
            GROUP,
            name,
            {
                "location": LOCATION,
                "properties": {
                    "virtualMachineScaleSet": {"id": set_id},
                    "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
                    "osProfile": {"computerName": name, "adminUsername": "azureuser"},
                    "networkProfile": {
                        "networkInterfaces": [{"id": nic.id, "properties": {"primary": True}}]
                    },
                },
            },
        ).result()


def settle(local: LocalAzure, delivery: EventGridDelivery, compute: Any, network: Any) -> None:
    """Wait (bounded) for the events to be delivered and the looks they queued to be done."""
    local.arm.wait_idle(60)
    delivery.drain()
    until = time.monotonic() + 120  # the looks run on the hosts' work queue
    while stripped_left(local) and time.monotonic() < until:
        time.sleep(0.5)  # polling ARM's state, bounded
    local.arm.wait_idle(60)
    delivery.drain()  # the remediator's own writes' events
    local.arm.advance_clock(local.arm.settings.list_lag_s)  # the report's lists show it all


def stripped_left(local: LocalAzure) -> int:
    """Scale-set-created instances still carrying a public IP, read from the simulator's state
    (ARM's truth now: its lists lag the writes), not from the product."""
    nics = {nic["id"].lower(): nic for nic in local.arm.resources("Microsoft.Network/networkInterfaces")}
    left = 0
    for vm in local.arm.resources("Microsoft.Compute/virtualMachines"):
        if vm["name"] in HAND_ADDED:
            continue
        configs = [
            config
            for ref in vm["properties"]["networkProfile"]["networkInterfaces"]
            for config in nics.get(ref["id"].lower(), {}).get("properties", {}).get("ipConfigurations", [])
        ]
        left += any(config.get("properties", {}).get("publicIPAddress") for config in configs)
    return left


def _public_ips(network: Any, vm_doc: Mapping[str, Any]) -> list[str]:
    found = []
    for ref in vm_doc["properties"]["networkProfile"]["networkInterfaces"]:
        nic = network.network_interfaces.get(GROUP, ResourceId.parse(ref["id"]).name).as_dict()
        for config in nic["properties"]["ipConfigurations"]:
            public_ip = config.get("properties", {}).get("publicIPAddress")
            if public_ip:
                found.append(public_ip["id"])
    return found


def report_instances(
    compute: Any,
    network: Any,
    records: list[AuditRecord],
    hand_nic_etags: Mapping[str, str | None],
    out: TextIO,
) -> tuple[int, list[str]]:
    """One line per VM of the set: origin, public IP now, what happened, creation -> detach time."""
    detached = {
        r.instance.lower(): r.time
        for r in records
        if r.kind is RecordKind.OUTCOME and r.action == "detach-public-ip" and r.result == "succeeded"
    }
    failures: list[str] = []
    stripped = 0
    out.write(
        f"\n{'instance':<26} {'origin':<11} {'public IP now':<14} {'what happened':<14} creation->strip\n"
    )
    for vm in sorted(compute.virtual_machines.list(GROUP), key=lambda v: str(v.name)):
        doc, name = vm.as_dict(), str(vm.name)
        public_ips = _public_ips(network, doc)
        window = "-"
        if name in HAND_ADDED:
            written = network.network_interfaces.get(GROUP, f"{name}-nic").etag != hand_nic_etags[name]
            what = "WRITTEN TO" if written else "untouched"
            if written:
                failures.append(f"hand-added VM {name} was written to")
        elif public_ips:
            what = "NOT STRIPPED"
            failures.append(f"{name} still has {public_ips}")
        else:
            what = "stripped"
            stripped += 1
            created = datetime.fromisoformat(doc["properties"]["timeCreated"].replace("Z", "+00:00"))
            when = detached.get(str(vm.id).lower())
            window = f"{(when - created).total_seconds():.2f} s" if when else "?"
        origin = "hand-added" if name in HAND_ADDED else "scale-set"
        out.write(f"{name:<26} {origin:<11} {'yes' if public_ips else 'none':<14} {what:<14} {window}\n")
    return stripped, failures


def run(out: TextIO = sys.stdout) -> int:
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.network import NetworkManagementClient

    # The functions library warns on every indexing that auth levels apply to HTTP triggers only.
    logging.getLogger().setLevel(logging.ERROR)
    out.write("Starting the local Azure stand-in (ARM simulator + Azurite) on loopback...\n")
    shutil.rmtree(DEMO_STORAGE, ignore_errors=True)
    DEMO_STORAGE.mkdir(parents=True)
    with LocalAzure(azurite_data=DEMO_STORAGE, provision_delay_s=1.0, lro_duration_s=0.2) as local:
        os.environ.update(local.environment(audit_table=DEMO_AUDIT_TABLE))
        local.authorize(SUBSCRIPTION)
        environment = local.environment(audit_table=DEMO_AUDIT_TABLE)
        host_logs = DEMO_STORAGE.parent / "hosts"  # each host process's log, for when it fails
        host_logs.mkdir(parents=True, exist_ok=True)
        hosts = HostPool(2, environment, log_dir=host_logs).start()
        delivery = EventGridDelivery(hosts.handler())
        local.arm.add_event_sink(delivery.publish)
        delivery.start()
        options: dict[str, Any] = {
            "base_url": local.arm.endpoint,
            "connection_verify": str(local.arm.ca_bundle),
            "polling_interval": 0.05,
        }
        credential = estate_owner()
        compute: Any = ComputeManagementClient(credential, SUBSCRIPTION, **options)
        network: Any = NetworkManagementClient(credential, SUBSCRIPTION, **options)

        out.write(
            f"Building {SET_NAME}: Flexible, public IP per instance, capacity 0, tag remediation.mode=strip\n"
        )
        out.write(f"Attaching {len(HAND_ADDED)} VMs by hand, without public IPs: {', '.join(HAND_ADDED)}\n")
        build_estate(compute, network)
        local.arm.wait_idle(30)
        delivery.drain()
        hand_nic_etags: dict[str, str | None] = {
            name: network.network_interfaces.get(GROUP, f"{name}-nic").etag for name in HAND_ADDED
        }
        writes_before = local.arm.write_count()

        out.write(f"Scaling out by {SCALE_OUT}, as autoscale would (sku.capacity 0 -> {SCALE_OUT})...\n")
        started = time.monotonic()
        compute.virtual_machine_scale_sets.begin_create_or_update(
            GROUP, SET_NAME, scale_set_body(SCALE_OUT)
        ).result()
        settle(local, delivery, compute, network)
        elapsed = time.monotonic() - started
        delivery.stop()
        hosts.stop()  # each host finishes the invocations it runs

        records = list(AuditLog(local.settings(audit_table=DEMO_AUDIT_TABLE)).records())
        stripped, failures = report_instances(compute, network, records, hand_nic_etags, out)
        failures += delivery.failures
        # ARM authorised every request against the deployed role: a refusal is a failed demo.
        refused = [
            f"{r.method} {r.path} ({r.error_code})"
            for r in local.arm.requests()
            if r.status == 403 and r.principal.lower() == LoopbackCredential.APP_ID.lower()
        ]
        failures += [f"ARM refused the remediator: {request}" for request in refused]
        out.write(f"\n{render_table(records)}\n\n{render_summary(summarise(records))}\n")
        out.write(
            f"\n{stripped} of {SCALE_OUT} scale-set instances stripped, "
            f"{len(HAND_ADDED)} hand-added VMs checked; "
            f"{delivery.delivered} events delivered; ARM writes by the remediator: "
            # minus 1: the scale-out PUT itself
            f"{local.arm.write_count() - writes_before - 1}, refused by ARM: {len(refused)}; "
            f"{elapsed:.1f} s from scale-out to done.\n"
        )
        compute.close()
        network.close()
    out.write(
        "The demo's storage is kept in .demo/: review its audit log with\n"
        "  .venv/bin/localazure audit [--format json|csv] [--summary]   (or: localazure audit verify)\n"
    )
    for failure in failures:
        out.write(f"FAILED: {failure}\n")
    return 1 if failures or stripped != SCALE_OUT else 0


@contextlib.contextmanager
def demo_storage() -> Iterator[None]:
    """Azurite on the last demo's data, with the settings pointing at it, for the review commands."""
    if not DEMO_STORAGE.is_dir():
        raise FileNotFoundError(
            f"no demo has run here yet ({DEMO_STORAGE} is missing): run `make demo` first"
        )
    azurite = Azurite(DEMO_STORAGE).start()
    try:
        os.environ.update({"RemediationStorage": azurite.connection_string, "AUDIT_TABLE": DEMO_AUDIT_TABLE})
        yield
    finally:
        azurite.stop()
