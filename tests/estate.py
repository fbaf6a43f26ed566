"""Builds estates in the ARM simulator through the real SDK clients, delivers the events they
cause to the indexed function app, and reads back what was written to ARM and the audit log."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import arm_docs as docs

from localazure.host import deliver_event_grid, pump_queue, settle
from localazure.stack import LocalAzure, estate_owner
from remediation.audit import AuditLog
from remediation.events import HANDLED_EVENT_TYPES, HANDLED_OPERATIONS
from remediation.records import AuditRecord
from remediation.settings import Settings
from sim import ArmSimulator


class Estate:
    def __init__(self, local: LocalAzure, environment: dict[str, str]) -> None:
        from azure.mgmt.compute import ComputeManagementClient
        from azure.mgmt.network import NetworkManagementClient

        self.local = local
        self.sim = local.arm
        self.environment = environment
        self.remediator_access = local.authorize(docs.SUB)  # its role assignment
        options: dict[str, Any] = {
            "base_url": self.sim.endpoint,
            "connection_verify": str(self.sim.ca_bundle),
            "polling_interval": 0.02,
        }
        credential = estate_owner()
        self.compute: Any = ComputeManagementClient(credential, docs.SUB, **options)
        self.network: Any = NetworkManagementClient(credential, docs.SUB, **options)
        self._events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._listening = True
        self._unsettled: list[Any] = []  # work messages whose retry the storage outage kept hidden
        self.sim.add_event_sink(self._collect)

    def _collect(self, event: dict[str, Any]) -> None:
        with self._lock:
            if self._listening:
                self._events.append(event)

    # -- building --------------------------------------------------------------------------

    def create_set(
        self,
        name: str,
        capacity: int = 0,
        tags: dict[str, str] | None = None,
        links: dict[str, list[str]] | None = None,
    ) -> None:
        """A Flexible set with a public IP per instance; ``links``: ipConfiguration references
        (e.g. loadBalancerBackendAddressPools) its instances' NICs carry."""
        body = docs.with_links(docs.scale_set(name, capacity, tags), links or {})
        for server_field in ("id", "name", "type"):
            body.pop(server_field)
        self.compute.virtual_machine_scale_sets.begin_create_or_update(docs.GROUP, name, body).result()
        self.sim.wait_idle(30)

    def create_uniform_set(
        self,
        name: str,
        capacity: int = 0,
        tags: dict[str, str] | None = None,
        upgrade: str = "Manual",
        links: dict[str, list[str]] | None = None,
    ) -> None:
        body = docs.with_links(docs.uniform_set(name, capacity, tags, upgrade), links or {})
        for server_field in ("id", "name", "type", "etag"):
            body.pop(server_field)
        del body["properties"]["virtualMachineProfile"]["networkProfile"][
            "networkApiVersion"
        ]  # Flexible only
        del body["properties"]["platformFaultDomainCount"]
        self.compute.virtual_machine_scale_sets.begin_create_or_update(docs.GROUP, name, body).result()
        self.sim.wait_idle(30)

    def create_load_balancer(self, name: str = "lb") -> None:
        """A Standard public load balancer: backend pool `pool`, an HTTP rule and probe, and an SSH
        NAT pool `ssh` on ports 50000-50119 (as scale-set quickstarts build it)."""
        pip = self.network.public_ip_addresses.begin_create_or_update(
            docs.GROUP, f"{name}-ip", docs.frontend_public_ip()
        ).result()
        self.network.load_balancers.begin_create_or_update(
            docs.GROUP, name, docs.load_balancer(name, pip.id)
        ).result()
        self.sim.wait_idle(30)

    def create_application_security_group(self, name: str) -> None:
        self.network.application_security_groups.begin_create_or_update(
            docs.GROUP, name, {"location": docs.LOCATION}
        ).result()

    def load_balancer(self, name: str = "lb") -> dict[str, Any]:
        """The load balancer as ARM serves it (its pools' members and NAT rules included)."""
        return dict(self.network.load_balancers.get(docs.GROUP, name).as_dict())

    def create_autoscale_setting(self, set_name: str, minimum: int = 0) -> dict[str, Any]:
        """An enabled autoscale setting `{set}-autoscale` on the set (``minimum`` to 5 instances)."""
        from azure.core.rest import HttpRequest

        setting_id = f"{docs.PREFIX}/Microsoft.Insights/autoscalesettings/{set_name}-autoscale"
        profiles = [
            {
                "name": "default",
                "capacity": {"minimum": str(minimum), "maximum": "5", "default": str(minimum)},
                "rules": [],
            }
        ]
        setting = {
            "location": docs.LOCATION,
            "properties": {"enabled": True, "targetResourceUri": docs.set_id(set_name), "profiles": profiles},
        }
        answer = self.compute.send_request(
            HttpRequest("PUT", f"{setting_id}?api-version=2022-10-01", json=setting)
        )
        assert answer.status_code in (200, 201), answer.text()
        return setting

    def uniform_public_ips(self, set_name: str) -> dict[str, list[str]]:
        """Each instance of a Uniform set and the public IPs on its NICs."""
        found: dict[str, list[str]] = {}
        for instance in self.compute.virtual_machine_scale_set_vms.list(docs.GROUP, set_name):
            found[str(instance.instance_id)] = []
        for nic in self.network.network_interfaces.list_virtual_machine_scale_set_network_interfaces(
            docs.GROUP, set_name
        ):
            doc = nic.as_dict()
            instance_id = doc["id"].split("/virtualMachines/")[1].split("/")[0]
            for config in doc["properties"]["ipConfigurations"]:
                if config.get("properties", {}).get("publicIPAddress"):
                    found.setdefault(instance_id, []).append(config["properties"]["publicIPAddress"]["id"])
        return found

    def scale(self, name: str, capacity: int) -> None:
        body = self.compute.virtual_machine_scale_sets.get(docs.GROUP, name).as_dict()
        body["sku"]["capacity"] = capacity
        self.compute.virtual_machine_scale_sets.begin_create_or_update(docs.GROUP, name, body).result()
        self.sim.wait_idle(30)

    def attach_by_hand(self, set_name: str, vm_name: str) -> None:
        """A VM with its own NIC (no public IP), attached to the set as a person would."""
        nic = self.network.network_interfaces.begin_create_or_update(
            docs.GROUP,
            f"{vm_name}-nic",
            {
                "location": docs.LOCATION,
                "properties": {
                    "ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": docs.SUBNET}}}]
                },
            },
        ).result()
        body = docs.hand_added_vm(set_name, vm_name, f"{vm_name}-nic")
        body["properties"]["networkProfile"]["networkInterfaces"][0]["id"] = nic.id
        for server_field in ("id", "name", "type"):
            body.pop(server_field)
        self.compute.virtual_machines.begin_create_or_update(docs.GROUP, vm_name, body).result()
        self.sim.wait_idle(30)

    def tag(self, resource_id: str, tags: dict[str, str]) -> None:
        """Add tags to a scale set, VM or NIC (a PUT of the whole resource, as the portal does)."""
        name = resource_id.rsplit("/", 1)[-1]
        if "/virtualMachineScaleSets/" in resource_id:
            vmss = self.compute.virtual_machine_scale_sets.get(docs.GROUP, name).as_dict()
            vmss["tags"] = {**vmss.get("tags", {}), **tags}
            self.compute.virtual_machine_scale_sets.begin_create_or_update(docs.GROUP, name, vmss).result()
        elif "/virtualMachines/" in resource_id:
            vm = self.compute.virtual_machines.get(docs.GROUP, name).as_dict()
            vm["tags"] = {**vm.get("tags", {}), **tags}
            self.compute.virtual_machines.begin_create_or_update(docs.GROUP, name, vm).result()
        else:
            nic = self.network.network_interfaces.get(docs.GROUP, name).as_dict()
            nic["tags"] = {**nic.get("tags", {}), **tags}
            self.network.network_interfaces.begin_create_or_update(docs.GROUP, name, nic).result()
        self.sim.wait_idle(30)

    # -- events ----------------------------------------------------------------------------

    def events(self) -> list[dict[str, Any]]:
        """Events so far that the Event Grid subscription's filter lets through, then forget them."""
        with self._lock:
            events, self._events = self._events, []
        return [
            e
            for e in events
            if e["eventType"] in HANDLED_EVENT_TYPES
            and e["data"]["operationName"].lower() in HANDLED_OPERATIONS
        ]

    def deliver(self, event: dict[str, Any]) -> None:
        """Deliver the event to the Event Grid trigger, then the work it queued to the queue trigger."""
        deliver_event_grid(event)
        self.pump_rechecks()

    def take_in(self, event: dict[str, Any]) -> None:
        """Deliver the event to the Event Grid trigger only (the work it queues waits in the queue)."""
        deliver_event_grid(event)

    # -- reading back ----------------------------------------------------------------------

    # What the estate holds is read from the simulator's state, which is ARM's truth now: its
    # lists lag the writes (list_lag_s), and a test asserts what is, not what a list shows yet.

    def resources(self, resource_type: str) -> list[dict[str, Any]]:
        return self.sim.resources(resource_type)

    def vms(self, set_name: str) -> list[dict[str, Any]]:
        set_id = docs.set_id(set_name).lower()
        return [
            vm
            for vm in self.resources("Microsoft.Compute/virtualMachines")
            if str(vm["properties"].get("virtualMachineScaleSet", {}).get("id", "")).lower() == set_id
        ]

    def public_ips_of(self, vm: dict[str, Any]) -> list[str]:
        found = []
        for ref in vm["properties"]["networkProfile"]["networkInterfaces"]:
            nic = self.network.network_interfaces.get(docs.GROUP, ref["id"].rsplit("/", 1)[-1]).as_dict()
            for config in nic["properties"]["ipConfigurations"]:
                if config.get("properties", {}).get("publicIPAddress"):
                    found.append(config["properties"]["publicIPAddress"]["id"])
        return found

    def public_ip_count(self) -> int:
        return len(self.resources("Microsoft.Network/publicIPAddresses"))

    def arm_writes(self) -> int:
        return int(self.sim.write_count())

    def successful(self, method: str, resource_type: str, after: int = 0) -> list[str]:
        """Paths of the requests of this method and type that ARM accepted (2xx), in order
        (``after``: only those after the first ``after`` requests of the simulator's log)."""
        return [
            r.path
            for r in self.sim.requests()[after:]
            if r.method == method
            and r.resource_type.lower() == resource_type.lower()
            and 200 <= r.status < 300
        ]

    def sweep(self, *, past_due: bool = False) -> None:
        """The timer's sweep, run once Resource Graph shows the estate: its rows lag the writes
        (graph_lag_s); deployed, a sweep runs on its schedule, long after the writes it finds."""
        from azure.functions.timer import TimerRequest

        from localazure.host import user_function

        self.sim.advance_clock(self.sim.settings.graph_lag_s)
        user_function("sweep")(TimerRequest(past_due=past_due))

    def audit(self) -> list[AuditRecord]:
        return list(AuditLog(Settings.from_env(self.environment)).records())

    def pump_once(self) -> int:
        """Deliver the work queue's messages visible now (not those their handling queues). A
        message whose function raised is visible again at once (its retry is the test's next
        pump) and the error is raised, as Event Grid's 500 is by ``deliver``."""
        return pump_queue(
            self.environment["RemediationStorage"],
            self.environment["RECHECK_QUEUE"],
            "on_work",
            retry_after_s=0,
            raise_failures=True,
            unsettled=self._unsettled,
        )

    def lapse_visibility(self) -> None:
        """The host's receive visibility of the messages it could not make visible again (storage
        was down) ends now, as it would after its period."""
        settle(self.environment["RemediationStorage"], self.environment["RECHECK_QUEUE"], self._unsettled)

    def pump_rechecks(self) -> int:
        """Deliver the work queue's messages to its trigger until none is left visible (a
        message's handling may queue more: a follow-up, a watch's next look, a queued event's
        look). Before each round ARM's clock moves on by its lists' lag, so a round's looks see
        what the rounds before wrote: the tests that use this are about what is written, not
        about lists that lag. What a look does while lists lag (nothing taken for absent, the set
        watched until its instances are listed) is specified by tests that pump once, without
        moving the clock (test_lagging_lists.py, test_growing_sets.py, test_engine.py)."""
        delivered = 0
        for _ in range(20):  # bounded
            self.sim.advance_clock(self.sim.settings.list_lag_s)
            now = self.pump_once()
            delivered += now
            if not now:
                break
        return delivered

    def close(self) -> None:
        with self._lock:
            self._listening = False
        self.compute.close()
        self.network.close()

    def __enter__(self) -> Estate:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@contextmanager
def estate_on(
    azurite_of: LocalAzure, settings: dict[str, str], **simulator: Any
) -> Iterator[tuple[Estate, dict[str, str]]]:
    """An estate on a simulator of its own (``simulator``: its switches) and the session's Azurite,
    with fresh storage names; ``settings`` are added to the app settings. Yields the estate and the
    app settings, which the caller puts in the environment (``monkeypatch.setenv``)."""
    with ArmSimulator(**simulator) as arm:
        local = LocalAzure.__new__(LocalAzure)
        local.azurite, local.arm = azurite_of.azurite, arm
        unique = uuid.uuid4().hex[:12]
        environment = local.environment(
            audit_table=f"own{unique}",
            recheck_queue=f"own-{unique}",
            archive_container=f"own-{unique}",
            lock_container=f"own-locks-{unique}",
            ledger_container=f"own-ledger-{unique}",
        )
        environment.update(settings)
        with Estate(local, environment) as estate:
            yield estate, environment
