"""Providers - Get (`GET /subscriptions/{id}/providers/{namespace}`): what the simulator serves.

Tools that discover a provider before they call it (Cloud Custodian's c7n-azure, `az provider
show`, SDKs that pick an api-version) read its registration document first. The simulator
answers it natively for the namespaces it serves, registered, with the resource types it holds
and the api-versions those were recorded or are called with (the recordings in
shared/fixtures/recorded-arm: Compute 2025-04-01, Network 2025-05-01; the project's own clients:
Compute 2024-11-01, Network 2024-05-01, Insights 2022-10-01; Event Grid 2025-02-15, as infra/ deploys
it). The simulator does not check an
api-version against the list: it answers every version alike.
"""

from __future__ import annotations

from typing import Any

from sim.ids import NAMESPACES, RESOURCE_TYPES, VMSS_VM_TYPE

PROVIDERS_TYPE = "Microsoft.Resources/subscriptions/providers"
API_VERSIONS: dict[str, list[str]] = {
    "Microsoft.Compute": ["2025-04-01", "2024-11-01", "2024-07-01"],
    "Microsoft.Network": ["2025-05-01", "2024-07-01", "2024-05-01"],
    "Microsoft.Insights": ["2022-10-01"],
    "Microsoft.EventGrid": ["2025-02-15"],
}
# Types served outside the store's top-level types (sim/event_grid.py).
OTHER_TYPES = ("Microsoft.EventGrid/systemTopics", "Microsoft.EventGrid/systemTopics/eventSubscriptions")
LOCATIONS = ["West Europe", "North Europe", "East US"]


def provider_document(subscription: str, namespace: str) -> dict[str, Any] | None:
    """The provider's document (None: a namespace the simulator does not serve)."""
    canonical = NAMESPACES.get(namespace.lower())
    if canonical is None:
        return None
    types = sorted(
        t.split("/", 1)[1]
        for t in [*RESOURCE_TYPES.values(), VMSS_VM_TYPE, *OTHER_TYPES]
        if t.split("/", 1)[0].lower() == canonical.lower()
    )
    versions = API_VERSIONS[canonical]
    return {
        "id": f"/subscriptions/{subscription}/providers/{canonical}",
        "namespace": canonical,
        "registrationState": "Registered",
        "registrationPolicy": "RegistrationRequired",
        "resourceTypes": [
            {
                "resourceType": resource_type,
                "locations": list(LOCATIONS),
                "apiVersions": list(versions),
                "defaultApiVersion": versions[0],
                "capabilities": "None",
            }
            for resource_type in types
        ],
    }
