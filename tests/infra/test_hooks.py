"""The azd postdeploy hook, run with stand-ins for `azd` and `az` on PATH that record each call:
after the provision that creates the event subscriptions, in management-group mode, a policy
remediation task that re-evaluates compliance is started in every subscription under the group
(the group's own task finds nothing marked non-compliant yet), paging through the group's
descendants; a subscription where no task could start is named, and the hook fails.

The PowerShell mirror cannot run here (no pwsh); it is checked to make the same calls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOOKS = ROOT / "infra" / "hooks"
GROUP = "mg-platform"
GROUP_ID = f"/providers/Microsoft.Management/managementGroups/{GROUP}"
ASSIGNMENT = f"{GROUP_ID}/providers/Microsoft.Authorization/policyAssignments/remediator-tok"
DESCENDANTS = f"https://management.azure.com{GROUP_ID}/descendants?api-version=2020-05-01"
PAGE_2 = DESCENDANTS + "&$skiptoken=page2"
SUBS = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(1, 4)]

# ARM's descendants, two pages: a child group and subscriptions typed both ways ARM documents.
PAGES = {
    DESCENDANTS: {
        "value": [
            {"name": "mg-child", "type": "Microsoft.Management/managementGroups"},
            {"name": SUBS[0], "type": "Microsoft.Management/managementGroups/subscriptions"},
            {"name": SUBS[1], "type": "/subscriptions"},
        ],
        "nextLink": PAGE_2,
    },
    PAGE_2: {"value": [{"name": SUBS[2], "type": "Microsoft.Management/managementGroups/subscriptions"}]},
}

STAND_IN = '''#!{python}
"""{tool}: records its arguments; answers `az rest` from PAGES, with JMESPath as az applies it."""
import json, os, sys
import jmespath
args = sys.argv[1:]
with open(os.environ["CALLS"], "a") as calls:
    calls.write(json.dumps(["{tool}", *args]) + "\\n")
if "{tool}" == "azd" and args[:2] == ["env", "get-value"]:
    print(os.environ["ASSIGNMENT"])
if "{tool}" == "az" and args[0] == "rest":
    page = json.loads(os.environ["PAGES"])[args[args.index("--url") + 1]]
    found = jmespath.search(args[args.index("--query") + 1], page)
    print("\\n".join(found) if isinstance(found, list) else (found or ""))
if "{tool}" == "az" and args[:3] == ["policy", "remediation", "create"]:
    if args[args.index("--subscription") + 1] in os.environ.get("REFUSE", ""):
        sys.exit(1)
'''


def run_hook(
    tmp_path: Path, *, group: str, refuse: str = "", **azd_env: str
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("az", "azd"):
        stand_in = bin_dir / tool
        stand_in.write_text(STAND_IN.format(python=sys.executable, tool=tool))
        stand_in.chmod(0o755)
    calls = tmp_path / "calls.jsonl"
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "CALLS": str(calls),
        "PAGES": json.dumps(PAGES),
        "ASSIGNMENT": ASSIGNMENT,
        "REFUSE": refuse,
        "MANAGEMENT_GROUP_ID": group,
        **azd_env,  # what azd hands a hook: the environment's values
    }
    done = subprocess.run(
        ["sh", str(HOOKS / "postdeploy.sh")], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    return done, [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []


def remediations(calls: list[list[str]]) -> list[list[str]]:
    return [call for call in calls if call[1:4] == ["policy", "remediation", "create"]]


def test_in_management_group_mode_each_subscription_under_the_group_gets_a_task(tmp_path: Path) -> None:
    done, calls = run_hook(tmp_path, group=GROUP)

    assert done.returncode == 0, done.stderr
    assert calls[:2] == [
        ["azd", "env", "set", "DEPLOY_EVENT_SUBSCRIPTIONS", "true"],
        ["azd", "provision", "--no-prompt"],
    ]
    started = remediations(calls)
    assert [call[call.index("--subscription") + 1] for call in started] == SUBS, "both pages, no group"
    for call in started:
        assert call[call.index("--policy-assignment") + 1] == ASSIGNMENT
        assert call[call.index("--resource-discovery-mode") + 1] == "ReEvaluateCompliance"
    assert len({call[call.index("--name") + 1] for call in started}) == 1, "one run, one task name"
    assert "3 task(s) started in the subscriptions under mg-platform" in done.stdout


def test_a_subscription_where_no_task_starts_is_named_and_the_hook_fails(tmp_path: Path) -> None:
    done, calls = run_hook(tmp_path, group=GROUP, refuse=SUBS[1])

    assert done.returncode == 1
    assert len(remediations(calls)) == 3, "the others are still tried"
    assert f"No task could be started in: {SUBS[1]}. Run again:" in done.stderr


def test_in_subscription_mode_no_task_is_started(tmp_path: Path) -> None:
    done, calls = run_hook(tmp_path, group="")

    assert done.returncode == 0, done.stderr
    assert [call[0] for call in calls] == ["azd", "azd"] and not remediations(calls)


@pytest.mark.parametrize(
    "needed",
    [
        "azd env get-value REMEDIATION_WIRING_ASSIGNMENT_ID",
        "remediate-subscriptions.ps1",
        "$env:MANAGEMENT_GROUP_ID",
    ],
)
def test_the_powershell_hook_mirrors_it(needed: str) -> None:
    assert needed in (HOOKS / "postdeploy.ps1").read_text(encoding="utf-8")


def test_the_powershell_script_makes_the_same_calls() -> None:
    shell = (HOOKS / "remediate-subscriptions.sh").read_text(encoding="utf-8")
    power = (HOOKS / "remediate-subscriptions.ps1").read_text(encoding="utf-8")
    for part in (
        "/descendants?api-version=2020-05-01",
        "'Microsoft.Management/managementGroups/subscriptions'",
        "'/subscriptions'",
        "nextLink",
        "--resource-discovery-mode ReEvaluateCompliance",
        "remediator-initial-",
    ):
        assert part in shell and part in power, part
    # az is az.cmd on Windows, whose cmd would split a nextLink at its '&': not used for the pages.
    assert "Invoke-RestMethod" in power and "az rest" not in power
    for hook in ("postdeploy.sh", "postdeploy.ps1"):
        assert "REMEDIATION_TASKS_STARTED_FOR" in (HOOKS / hook).read_text(encoding="utf-8"), hook


def test_a_deployment_switched_to_the_group_gets_its_tasks_once_per_assignment(tmp_path: Path) -> None:
    """Its event subscriptions exist already (no second provision); the tasks start all the same,
    once: the assignment they were started for is kept in the azd environment."""
    done, calls = run_hook(tmp_path, group=" mg-platform ", DEPLOY_EVENT_SUBSCRIPTIONS="true")

    assert done.returncode == 0, done.stderr
    assert ["azd", "provision", "--no-prompt"] not in calls
    assert len(remediations(calls)) == 3, "the group's id trimmed as Bicep trims it"
    assert ["azd", "env", "set", "REMEDIATION_TASKS_STARTED_FOR", ASSIGNMENT] in calls

    again = tmp_path / "again"
    again.mkdir()
    done, calls = run_hook(
        again, group=GROUP, DEPLOY_EVENT_SUBSCRIPTIONS="true", REMEDIATION_TASKS_STARTED_FOR=ASSIGNMENT
    )
    assert done.returncode == 0 and not remediations(calls), "not again for the same assignment"


def test_without_the_assignment_in_the_environment_the_hook_says_so_and_starts_none(
    tmp_path: Path,
) -> None:
    done, calls = run_hook(tmp_path, group=GROUP, DEPLOY_EVENT_SUBSCRIPTIONS="true", ASSIGNMENT="")

    assert done.returncode == 0, done.stderr
    assert not remediations(calls)
    assert "no policy assignment in the environment yet" in done.stderr
