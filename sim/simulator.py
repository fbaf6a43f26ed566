"""`ArmSimulator`: the one object tests, the demo and benchmarks use.

No Azure subscription is reachable from our machines and no ARM emulator
exists, so this stands in for Azure Resource Manager for four resource types
(Flexible scale sets, VMs, NICs, public IPs). It wires the store, the
type-specific rules, the scheduler and the HTTPS server together, and offers the
inspection hooks tests need (events, request log, write counters, seeding and
export) without going through HTTP.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from sim.compute import VirtualMachines, VirtualMachineScaleSets
from sim.network import NetworkInterfaces, PublicIPAddresses
from sim.scheduler import Scheduler
from sim.server import WRITE_METHODS, ArmApi, HttpsServer
from sim.store import RequestRecord, Settings, Store
from sim.tls import write_self_signed


class ArmSimulator:
    """A local ARM over HTTPS on 127.0.0.1 that the real azure-mgmt clients talk to.

    provision_delay_s: how long a Flexible set takes to create or delete instances after a
        capacity change (its PUT stays Updating until then).
    lro_duration_s: how long every other PUT/DELETE stays InProgress.
    page_size: items per list page before a `nextLink`.
    child_events: also emit events for the VMs, NICs and public IPs the platform creates or
        deletes itself (Azure does not document whether it does; off by default).
    manual_vms_count_in_capacity: whether VMs attached to a Flexible set by hand count in
        `sku.capacity` (and may be deleted by lowering it). Azure does not document this.
    tenant_id: the `tenantId` written into events.
    """

    def __init__(
        self,
        *,
        provision_delay_s: float = 0.3,
        lro_duration_s: float = 0.05,
        page_size: int = 20,
        child_events: bool = False,
        manual_vms_count_in_capacity: bool = False,
        tenant_id: str = "00000000-0000-0000-0000-000000000000",
    ) -> None:
        self.settings = Settings(
            provision_delay_s=provision_delay_s,
            lro_duration_s=lro_duration_s,
            page_size=page_size,
            child_events=child_events,
            manual_vms_count_in_capacity=manual_vms_count_in_capacity,
            tenant_id=tenant_id,
        )
        self._scheduler = Scheduler()
        self._store = Store(
            self.settings,
            self._scheduler,
            [VirtualMachineScaleSets(), VirtualMachines(), NetworkInterfaces(), PublicIPAddresses()],
        )
        self._api = ArmApi(self._store, lambda: self.endpoint)
        self._server: HttpsServer | None = None
        self._tempdir: Path | None = None
        self._endpoint: str | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._server is not None:
            return
        self._tempdir = Path(tempfile.mkdtemp(prefix="arm-sim-"))
        cert, key = write_self_signed(self._tempdir)
        self._scheduler.start()
        self._server = HttpsServer(self._api, str(cert), str(key))
        self._endpoint = f"https://127.0.0.1:{self._server.port}"
        self._server.start()

    def stop(self) -> None:
        self._scheduler.stop()
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None
        self._endpoint = None

    def __enter__(self) -> ArmSimulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """`https://127.0.0.1:<port>`: the base URL to give the SDK clients."""
        if self._endpoint is None:
            raise RuntimeError("the simulator is not running; call start() first")
        return self._endpoint

    @property
    def ca_bundle(self) -> str:
        """Path of the PEM certificate to pass as `connection_verify`."""
        if self._tempdir is None:
            raise RuntimeError("the simulator is not running; call start() first")
        return str(self._tempdir / "cert.pem")

    # ------------------------------------------------------------------ state

    def seed(self, document: dict[str, Any] | list[dict[str, Any]]) -> int:
        """Load ARM JSON: one resource, a list, or `{"value": [...]}`. Returns the number loaded."""
        return self._store.seed(document)

    def export(self) -> dict[str, Any]:
        return self._store.export()

    def get_resource(self, resource_id: str) -> dict[str, Any] | None:
        return self._store.get(resource_id)

    def reset(self) -> None:
        """Forget resources, operations, request records and pending work; sinks stay."""
        self._store.reset()

    def wait_idle(self, timeout_s: float = 10.0) -> None:
        """Block until no operation or provisioning is pending; TimeoutError otherwise."""
        if not self._scheduler.wait_idle(timeout_s):
            raise TimeoutError(f"the simulator still had {self._scheduler.pending()} pending tasks")

    def fail_next_operation(
        self, resource_id: str, code: str = "InternalServerError", message: str = "Injected failure."
    ) -> None:
        """Fault injection: the next operation on `resource_id` ends Failed with this error."""
        self._store.fail_next_operation(resource_id, code, message)

    # ------------------------------------------------------------------ observation

    def add_event_sink(self, callback: Callable[[dict[str, Any]], None]) -> None:
        """`callback(event)` for every emitted Event Grid event, from any thread."""
        self._store.add_sink(callback)

    def requests(self) -> list[RequestRecord]:
        return self._store.records()

    def write_count(self, resource_type: str | None = None) -> int:
        """PUT/PATCH/POST/DELETE requests answered 2xx, optionally of one resource type."""
        wanted = resource_type.lower() if resource_type else None
        return len(
            [
                record
                for record in self._store.records()
                if record.method in WRITE_METHODS
                and 200 <= record.status < 300
                and "/locations/" not in record.resource_type.lower()
                and (wanted is None or record.resource_type.lower() == wanted)
            ]
        )
