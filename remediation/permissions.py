"""The ARM actions the remediator needs: every operation the gateway performs, declared where it
is performed, plus what ARM authorises its polls as. The custom role infra/ deploys must grant
exactly ``required_permissions()`` (tests/infra checks it against the role's JSON)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

# ARM operation (as in role definitions) -> the gateway methods that perform it.
OPERATIONS: dict[str, set[str]] = {}

# Linked access: a PUT or PATCH is also authorised, for every resource id its body carries, as the
# action ARM requires for that kind of link. The bodies the remediator sends re-assert links they
# did not choose: a NIC is PUT back with everything it had (Network has no partial update of
# ipConfigurations), and a scale set's NIC configurations are PATCHed back whole. So the role needs
# the action of every link such a document can carry, but for public IPs and their prefixes: both
# documents go out without them, so the role may never attach one. The reference types, their
# actions and the sources are the simulator's table (sim/linked_access.py); tests/infra runs a NIC
# and a NIC configuration carrying every kind of link through the planner's own body builders and
# derives these lists from what is left, so a new kind of link cannot ship without its action.
NIC_LINKS = (
    "Microsoft.Network/virtualNetworks/subnets/join/action",
    "Microsoft.Network/networkSecurityGroups/join/action",
    "Microsoft.Network/applicationSecurityGroups/joinIpConfiguration/action",
    "Microsoft.Network/loadBalancers/backendAddressPools/join/action",
    "Microsoft.Network/loadBalancers/inboundNatRules/join/action",
    "Microsoft.Network/loadBalancers/frontendIPConfigurations/join/action",
    "Microsoft.Network/applicationGateways/backendAddressPools/join/action",
    "Microsoft.Network/virtualNetworkTaps/join/action",
)
NIC_CONFIGURATION_LINKS = (
    "Microsoft.Network/virtualNetworks/subnets/join/action",
    "Microsoft.Network/networkSecurityGroups/join/action",
    "Microsoft.Network/applicationSecurityGroups/joinIpConfiguration/action",
    "Microsoft.Network/loadBalancers/backendAddressPools/join/action",
    "Microsoft.Network/loadBalancers/inboundNatPools/join/action",
    "Microsoft.Network/applicationGateways/backendAddressPools/join/action",
)


# The join ARM checks for each kind of link, by the linked resource's type (lower case; the action
# less its last two segments, `join/action`): `doctor` checks it at the linked resource's group.
LINK_ACTIONS: dict[str, str] = {
    action.rsplit("/", 2)[0].lower(): action for action in (*NIC_LINKS, *NIC_CONFIGURATION_LINKS)
}


def arm_operation(*operations: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Declare the ARM operations a gateway method performs."""

    def declare(method: Callable[P, R]) -> Callable[P, R]:
        for operation in operations:
            OPERATIONS.setdefault(operation, set()).add(method.__name__)
        return method

    return declare


# Long-running operations are polled at their provider's operation-status URLs, which ARM
# authorises as reads of these (one pair per provider namespace the gateway writes to).
_POLLING = {
    "Microsoft.Compute": ("Microsoft.Compute/locations/operations/read",),
    "Microsoft.Network": (
        "Microsoft.Network/locations/operations/read",
        "Microsoft.Network/locations/operationResults/read",
    ),
}


def required_permissions() -> frozenset[str]:
    """Every ARM action the remediator performs: the custom role must grant exactly these."""
    import remediation.arm  # noqa: F401 - its methods declare the operations

    actions = set(OPERATIONS)
    written = {op.split("/", 1)[0] for op in OPERATIONS if not op.endswith("/read")}
    for namespace in written:
        actions.update(_POLLING.get(namespace, ()))
    return frozenset(actions)
