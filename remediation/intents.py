"""What each kind of write says in the audit log: its intent in words, and the state it changes
(before and after), for the reviewers who read the records. The ids are in the records' own fields."""

from __future__ import annotations

from remediation.model import Action, ActionKind


def describe(action: Action) -> str:
    """The write in words, for the intent record (the ids are in the record's own fields)."""
    name = action.target.name
    if action.kind is ActionKind.DETACH_PUBLIC_IP:
        return f"PUT NIC {name} without its public IP, If-Match {action.if_match}"
    if action.kind is ActionKind.DELETE_PUBLIC_IP:
        return f"DELETE public IP {name}, now detached"
    if action.kind is ActionKind.DELETE_VM:
        return f"DELETE VM {name}: created by the set with a public IP"
    if action.kind is ActionKind.REMOVE_PUBLIC_IP_FROM_MODEL:
        return f"PATCH scale set {name}: its model's NICs without public IP, If-Match {action.if_match}"
    if action.kind is ActionKind.DISABLE_AUTOSCALE:
        return f"PATCH autoscale setting {name}: enabled false, so it does not scale the set back"
    if action.kind is ActionKind.UPGRADE_INSTANCES:
        assert action.body is not None
        return f"POST manualUpgrade of {name} instances {', '.join(action.body['instanceIds'])}"
    return f"PATCH scale set {name}: capacity 0, If-Match {action.if_match}"


def states(action: Action) -> tuple[str, str]:
    """The state the write changes, before and after, in a few words (for reviewers)."""
    finding = action.finding
    if action.kind is ActionKind.DETACH_PUBLIC_IP:
        names = ", ".join(ip.name for ip in finding.public_ip_ids)
        return f"NIC {finding.nic.name} carries public IP {names}", f"NIC {finding.nic.name} has no public IP"
    if action.kind is ActionKind.DELETE_PUBLIC_IP:
        name = action.target.name
        return (
            f"public IP {name} detached",
            f"deletion of public IP {name} accepted (confirmed by a list after)",
        )
    if action.kind is ActionKind.DELETE_VM:
        return f"VM {finding.instance.name} exists with a public IP", f"VM {finding.instance.name} deleted"
    if action.kind is ActionKind.REMOVE_PUBLIC_IP_FROM_MODEL:
        return "the set's model gives each instance a public IP", "the set's model gives none"
    if action.kind is ActionKind.DISABLE_AUTOSCALE:
        return (
            f"autoscale setting {action.target.name} enabled",
            f"autoscale setting {action.target.name} disabled",
        )
    if action.kind is ActionKind.UPGRADE_INSTANCES:
        assert action.body is not None
        ids = ", ".join(action.body["instanceIds"])
        return f"instances {ids} carry public IPs from the old model", f"instances {ids} on the model without"
    return f"capacity {finding.scale_set.capacity}", "capacity 0"
