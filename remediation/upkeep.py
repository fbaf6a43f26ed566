"""The writes a strip-mode reconcile makes beside its plan, each write-ahead (``announced_write``):
- a NIC an update of ours left ``Failed`` is put again as it is;
- a public IP remediation detached and did not delete is deleted, after a live re-check;
- a Uniform set's model that still gives each instance a public IP, while no instance needs
  remediating (none yet, or none upgraded to that model), has it removed, so the next upgrade
  or scale-out brings none.
What to write is judged by the pure modules (``recovery``, ``plan``); this one reads and writes.
A failure among the first two is kept in ``deferred`` and raised once the set's own remediation
has been tried, so one stuck resource does not hold the rest back.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from remediation.arm import ArmGateway
from remediation.arm_errors import ArmError, PreconditionFailed
from remediation.exemptions import today_utc
from remediation.model import ActionKind, Mode, ObservedSet, Plan, RecordKind
from remediation.plan import lone_model_strip
from remediation.policy import Policy
from remediation.records import AuditRecord
from remediation.recovery import detached_earlier, leftovers_to_delete, nics_to_repair
from remediation.write_ahead import Context, announced_write


def repair_nics(
    arm: ArmGateway,
    policy: Policy,
    observed: ObservedSet,
    history: Iterable[AuditRecord],
    *,
    context: Context,
    deferred: list[ArmError],
) -> bool:
    """PUT again, as it is, each NIC an update of ours left Failed. Returns whether any was."""
    repairs = nics_to_repair(observed, history, policy, today_utc())
    for nic in repairs:
        try:
            announced_write(
                context,
                functools.partial(arm.put_nic, nic.id, nic.raw, nic.etag),
                None,
                action=ActionKind.REPAIR_NIC.value,
                target=nic.id,
                reason=f"PUT NIC {nic.name} again as it is, If-Match {nic.etag}: an earlier update "
                "of ours left it Failed",
                before=f"NIC {nic.name} Failed",
                after=f"NIC {nic.name} Succeeded",
                scale_set=observed.scale_set.id.value,
                nic=nic.id.value,
                instance=nic.vm_id.value if nic.vm_id else "",
            )
        except PreconditionFailed:
            continue  # it changed since it was read: the plan reads it again
        except ArmError as error:
            if not error.refused:  # a refusal that stands is recorded, not retried
                deferred.append(error)
    return bool(repairs)


def delete_leftovers(
    arm: ArmGateway,
    policy: Policy,
    observed: ObservedSet,
    history: Iterable[AuditRecord],
    *,
    context: Context,
    deferred: list[ArmError],
) -> None:
    """Delete, write-ahead, the public IPs remediation detached earlier and did not delete,
    each re-checked live (``recovery.leftovers_to_delete``). One list per resource group
    finds the candidates: those it still shows, in whatever version (a list lags: it may
    show one still attached that is detached now; one it does not show is long gone). Each
    is read again by id, and judged on what that read shows."""
    detached = detached_earlier(history, observed.scale_set.id)
    if not detached or policy.keep_detached_public_ips:
        return
    named = {earlier.public_ip for earlier in detached}
    groups = sorted({(ip.subscription.lower(), ip.resource_group.lower()) for ip in named})
    listed = [ip for sub, group in groups for ip in arm.list_public_ips(sub, group)]
    candidates = [ip.id for ip in listed if ip.id in named]
    live = {ip_id: arm.get_public_ip(ip_id) for ip_id in candidates}
    deletions, left = leftovers_to_delete(detached, live, observed, policy, today_utc())
    set_id = observed.scale_set.id.value
    for reason in left:
        context.note(RecordKind.DECISION, scale_set=set_id, mode=Mode.STRIP.value, reason=reason)
    for leftover in deletions:
        name = leftover.public_ip.name
        try:
            announced_write(
                context,
                functools.partial(arm.delete_public_ip, leftover.public_ip),
                None,
                action=ActionKind.DELETE_PUBLIC_IP.value,
                target=leftover.public_ip,
                reason=f"DELETE public IP {name}: {leftover.reason}",
                before=f"public IP {name} detached",
                after=f"deletion of public IP {name} accepted",
                scale_set=set_id,
                mode=Mode.STRIP.value,
                nic=leftover.nic,
                instance=leftover.instance,
                public_ip=leftover.public_ip.value,
            )
        except ArmError as error:
            if not error.refused:
                deferred.append(error)


def strip_lone_model(
    arm: ArmGateway,
    observed: ObservedSet,
    the_plan: Plan,
    context: Context,
    *,
    policy: Policy,
    dry_run: bool,
) -> bool:
    """Remove the public IP from a Uniform set's model when the plan does not (no instance needs
    it now): recorded, and written unless this is a dry run. Returns False if the set changed
    since it was read (412: the caller reads it again); a refusal that stands is recorded by
    ``announced_write`` and any other error raised."""
    body, reason = lone_model_strip(observed, the_plan, policy, today_utc())
    set_id = observed.scale_set.id.value
    if not reason:
        return True
    context.note(
        RecordKind.DECISION,
        scale_set=set_id,
        mode=the_plan.mode.value,
        reason=f"dry run: would {reason}" if dry_run and body is not None else reason,
    )
    if body is None or dry_run:
        return True
    scale_set = observed.scale_set
    try:
        announced_write(
            context,
            functools.partial(arm.patch_scale_set, scale_set.id, body, scale_set.etag),
            None,
            action=ActionKind.REMOVE_PUBLIC_IP_FROM_MODEL.value,
            target=scale_set.id,
            reason=f"PATCH scale set {scale_set.name}: its model's NICs without public IP, "
            f"If-Match {scale_set.etag}",
            before="the set's model gives each instance a public IP",
            after="the set's model gives none",
            scale_set=set_id,
            mode=the_plan.mode.value,
        )
    except PreconditionFailed:
        return False
    except ArmError as error:
        if not error.refused:
            raise
    return True
