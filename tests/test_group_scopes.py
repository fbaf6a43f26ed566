"""A restricted scope that names a management group: every scale set in a subscription under it,
at any depth, is restricted in the scope's mode, which subscriptions those are coming from ARM (the
group's descendants, cached: ``ancestry``), never from an event or a guess.

The judgement is pure (``Policy.placed``, ``restriction_for``); end to end, through the local
stand-in, an untagged set in a subscription under the group is stripped on its events and by the
sweep, one in a monitored subscription outside it is left alone, and `remediation whatif` is told
the group's subscriptions rather than guessing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import arm_docs as docs
import pytest
from estate import Estate
from test_management_groups import GROUP, monitor_group, public_ips

from remediation.cli import main
from remediation.model import Mode, RecordKind
from remediation.policy import Policy, PolicyError, UnplacedPolicy, load_policy, restriction_for
from remediation.resources import ScaleSet

GROUP_ID = "/providers/Microsoft.Management/managementGroups/"
UNDER = "00000000-0000-4000-8000-000000000001"
OUTSIDE = "00000000-0000-4000-8000-000000000002"


def policy(*scopes: tuple[str, str], **keys: object) -> Policy:
    return load_policy(json.dumps({"scopes": [{"scope": s, "mode": m} for s, m in scopes], **keys}))


def scale_set(subscription: str, tags: dict[str, str] | None = None) -> ScaleSet:
    doc = json.loads(json.dumps(docs.scale_set("web", 1, tags or {})).replace(docs.SUB, subscription))
    return ScaleSet.from_arm(doc)


# -- the judgement ----------------------------------------------------------------------------------


def test_a_group_scope_restricts_every_set_in_a_subscription_under_it_in_its_mode() -> None:
    placed = policy((GROUP_ID + "Prod", "strip")).placed({"prod": frozenset({UNDER})})

    inside = restriction_for(scale_set(UNDER.upper()), placed)
    assert inside.mode is Mode.STRIP
    assert inside.reason == f"configured scope {GROUP_ID.lower()}prod is strip"
    assert not restriction_for(scale_set(OUTSIDE), placed).restricted


def test_a_subscriptions_scope_beats_its_groups_and_of_two_groups_the_stricter_wins() -> None:
    """Groups nest, and the policy does not know how: of two that hold the set, the stricter."""
    placed = policy(
        (GROUP_ID + "platform", "audit"),
        (GROUP_ID + "prod", "evict"),
        (f"/subscriptions/{OUTSIDE}", "audit"),
    ).placed({"platform": frozenset({UNDER, OUTSIDE}), "prod": frozenset({UNDER, OUTSIDE})})

    assert restriction_for(scale_set(UNDER), placed).mode is Mode.EVICT
    assert restriction_for(scale_set(OUTSIDE), placed).mode is Mode.AUDIT, "the subscription's own scope"


def test_within_a_group_scope_a_tag_may_tighten_but_not_relax() -> None:
    placed = policy((GROUP_ID + "prod", "strip")).placed({"prod": frozenset({UNDER})})

    assert restriction_for(scale_set(UNDER, {"remediation.mode": "evict"}), placed).mode is Mode.EVICT
    relaxed = restriction_for(scale_set(UNDER, {"remediation.mode": "audit"}), placed)
    assert relaxed.mode is Mode.STRIP and "may not relax it" in relaxed.reason


def test_a_policy_not_told_the_groups_subscriptions_refuses_to_judge_rather_than_guess_none() -> None:
    unplaced = policy((GROUP_ID + "prod", "strip"))
    with pytest.raises(UnplacedPolicy):
        restriction_for(scale_set(UNDER), unplaced)
    assert unplaced.scope_groups == {"prod"}
    assert policy((f"/subscriptions/{UNDER}", "strip")).scope_groups == frozenset()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"scopes": [{"scope": GROUP_ID + "has space", "mode": "strip"}]},
            "scopes[0].scope: management group",
        ),
        (
            {"scopes": [{"scope": "/tenants/x", "mode": "strip"}]},
            f"/subscriptions/<id>[/resourceGroups/<name>[/providers/...]], or {GROUP_ID}<name>",
        ),
        (
            {"exemptions_allowed_in": [GROUP_ID + "prod"]},
            "exemptions_allowed_in[0]: expected /subscriptions/<id>",
        ),
    ],
)
def test_a_bad_group_scope_is_refused_naming_the_entry(entry: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError, match=re.escape(message)):
        load_policy(json.dumps(entry))


def test_a_group_that_could_not_be_read_is_judged_without_only_where_it_could_not_change_the_verdict() -> (
    None
):
    """A group's scope can only raise a set's mode to its own: a verdict from the other scopes and
    the tag that is at least as strict stands; a milder one is retried (the read may succeed),
    or, if ARM refused the group, given as a lower bound; nothing is guessed unrestricted."""
    configured = policy(
        (GROUP_ID + "prod", "evict"), (GROUP_ID + "dev", "strip"), (f"/subscriptions/{OUTSIDE}", "audit")
    )
    members = {"dev": frozenset({UNDER})}
    unread = configured.placed(members, unread=frozenset({"prod"}))
    refused = configured.placed(members, unread=frozenset({"prod"}), refused=frozenset({"prod"}))

    evict = restriction_for(scale_set(UNDER, {"remediation.mode": "evict"}), unread)
    assert (
        evict.mode is Mode.EVICT
        and "management group prod not read: it could not change this" in evict.reason
    )
    with pytest.raises(UnplacedPolicy, match="management group prod could not be read"):
        restriction_for(scale_set(UNDER), unread)  # strip by dev, but prod may say evict: retried
    at_least = restriction_for(scale_set(UNDER), refused)
    assert (
        at_least.mode is Mode.STRIP and "at least: management group prod could not be read" in at_least.reason
    )
    with pytest.raises(UnplacedPolicy):
        restriction_for(scale_set(OUTSIDE.replace("2", "3")), refused)  # in no readable scope: unknown
    assert not configured.needs_groups(scale_set(OUTSIDE).id)
    assert restriction_for(scale_set(OUTSIDE), unread).mode is Mode.AUDIT, "its subscription's scope"
    assert not unread.allows_exemptions(scale_set(UNDER).id), "as if in the group's scope"


# -- through the local stand-in -----------------------------------------------------------------------


def test_an_untagged_set_under_a_restricted_group_is_stripped_on_its_events_and_one_outside_left(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app monitors the group and a listed subscription outside it; only the group is
    restricted. Its sets carry no tag: the group's scope alone restricts them."""
    monitor_group(
        estate,
        monkeypatch,
        scopes=[{"scope": GROUP_ID + "prod", "mode": "strip"}],
        monitored_subscriptions=[docs.SUB],
    )
    estate.sim.create_management_group("prod", GROUP)  # a child group: its subscriptions count
    estate.create_set("web")
    estate.scale("web", 1)
    writes = estate.arm_writes()
    for event in estate.events():  # the subscription is listed, not yet under the group
        estate.deliver(event)
    assert estate.arm_writes() == writes and [len(ips) for ips in public_ips(estate, "web")] == [1]
    reasons = [r.reason for r in estate.audit() if r.kind is RecordKind.DECISION]
    assert any("not restricted" in reason for reason in reasons)

    estate.sim.place_subscription(docs.SUB, "prod")  # moved under the restricted group
    estate.scale("web", 2)
    for event in estate.events():
        estate.deliver(event)
    estate.pump_rechecks()
    assert public_ips(estate, "web") == [[], []], "stripped: the group's scope restricts it now"
    decided = [r.reason for r in estate.audit() if r.kind is RecordKind.DECISION]
    assert any(f"configured scope {GROUP_ID.lower()}prod is strip" in reason for reason in decided)


def test_the_sweep_queues_the_sets_under_a_restricted_group_and_not_the_others(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_management_groups import seeded_set

    monitor_group(estate, monkeypatch, scopes=[{"scope": GROUP_ID + "prod", "mode": "strip"}])
    estate.sim.create_management_group("prod", GROUP)
    estate.sim.place_subscription(docs.SUB, "prod")
    estate.sim.place_subscription(OUTSIDE, GROUP)  # monitored, not restricted
    estate.sim.seed({"value": [seeded_set(OUTSIDE, "elsewhere", restricted=False)]})
    estate.create_set("web")
    estate.scale("web", 1)
    estate.events()  # lost: never delivered

    estate.sweep()
    estate.pump_rechecks()
    assert public_ips(estate, "web") == [[]]
    swept = [r.reason for r in estate.audit() if r.reason.startswith("sweep of ")]
    assert swept == [
        f"sweep of 0 subscriptions and management groups {GROUP} (2 subscriptions in all) by resource "
        "graph: 2 scale sets, 1 restricted; 0 unfinished writes judged from the log"
    ]


# -- whatif, offline ---------------------------------------------------------------------------------


def test_whatif_is_told_the_groups_subscriptions_and_refuses_to_guess_without_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = tmp_path / "all.json"
    inventory.write_text(
        json.dumps(
            [
                docs.scale_set("web", 1),
                docs.flex_instance("web", "0a1b2c3d", "w1Nic-0a1b2c3d"),
                docs.nic("w1Nic-0a1b2c3d", "web_0a1b2c3d", "pip1"),
            ]
        )
    )
    config = tmp_path / "policy.json"
    config.write_text(json.dumps({"scopes": [{"scope": GROUP_ID + "Prod", "mode": "evict"}]}))
    command = ["whatif", "--inventory", str(inventory), "--config", str(config), "-o", "json"]

    assert main(command) == 2
    assert "scopes name management group prod: give the subscriptions under it with --under prod=" in (
        capsys.readouterr().err
    )
    assert main([*command, "--under", f"Prod={OUTSIDE}"]) == 0
    assert json.loads(capsys.readouterr().out) == [], "its subscription is not under the group"
    assert main([*command, "--under", f"prod={OUTSIDE},{docs.SUB}"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["mode"] == "evict" and row["action"] == "delete-vm"
    with pytest.raises(SystemExit):
        main([*command, "--under", "prod"])
    assert "is not <management group>=<subscription id>" in capsys.readouterr().err


@pytest.mark.refusals
def test_a_group_scope_the_app_cannot_read_stops_no_enforcement_by_tag_elsewhere(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A typo in a scope's group (ARM refuses to show a group that does not exist, or one the app
    holds no role at): tagged sets are still remediated on their events and by the sweep."""
    monitor_group(estate, monkeypatch, scopes=[{"scope": GROUP_ID + "mg-prdo", "mode": "evict"}])
    estate.sim.place_subscription(docs.SUB, GROUP)
    estate.create_set("web", tags={"remediation.mode": "strip"})
    estate.scale("web", 1)
    for event in estate.events():
        estate.deliver(event)
    assert public_ips(estate, "web") == [[]], "stripped by its tag"
    decided = [r.reason for r in estate.audit() if r.kind is RecordKind.DECISION]
    assert any("(at least: management group mg-prdo could not be read, ARM refused it)" in r for r in decided)

    estate.scale("web", 2)
    estate.create_set("db")  # untagged: only the unreadable group could restrict it
    estate.scale("db", 1)
    estate.events()  # lost
    estate.sweep()
    estate.pump_rechecks()
    assert public_ips(estate, "web") == [[], []], "the sweep judged it too"
    assert [len(ips) for ips in public_ips(estate, "db")] == [1], "nothing written on a guess"
    unjudged = [r.reason for r in estate.audit() if r.kind is RecordKind.ERROR and "not judged" in r.reason]
    assert unjudged == [
        "1 scale sets not judged (their verdict depends on an unread management group), "
        f"e.g. {docs.set_id('db')}; the next sweep tries again"
    ]
