"""docs/deploy.md names only parameters that infra/main.parameters.json and infra/main.bicep define.

Two forms in the guide are read:
- every ``azd env set NAME VALUE`` line: NAME must be an azd variable that main.parameters.json
  maps to a main.bicep parameter, and VALUE must be one the parameter allows;
- the parameter table between ``<!-- parameters:begin -->`` and ``<!-- parameters:end -->``:
  each row's parameter, azd variable and default must match the two files, and every parameter
  of main.parameters.json must have a row.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any, cast

import pytest
from pycep import BicepParser

from remediation.model import Mode

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "deploy.md"
PARAMETERS_FILE = ROOT / "infra" / "main.parameters.json"
MAIN = ROOT / "infra" / "main.bicep"

ENV_SET = re.compile(r"^\s*azd env set (.+)$")
REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)(=[^}]*)?\}$")
CODE = re.compile(r"`([^`]*)`")


def bicep_parameters() -> dict[str, Any]:
    doc = cast(dict[str, Any], BicepParser().parse(text=MAIN.read_text(encoding="utf-8")))
    return cast(dict[str, Any], doc["parameters"])


def variable_to_parameter() -> dict[str, str]:
    """azd variable -> main.bicep parameter, from main.parameters.json."""
    parameters = json.loads(PARAMETERS_FILE.read_text(encoding="utf-8"))["parameters"]
    mapping: dict[str, str] = {}
    for name, entry in parameters.items():
        match = REFERENCE.match(str(entry["value"]))
        assert match, f"main.parameters.json: {name} is not a single ${{VARIABLE}}"
        mapping[match.group(1)] = name
    return mapping


def allowed_values(parameter: dict[str, Any]) -> list[Any] | None:
    for decorator in parameter["decorators"]:
        if decorator["type"] == "allowed":
            return cast(list[Any], decorator["argument"])
    return None


def env_set_lines() -> list[tuple[int, str, str]]:
    found = []
    for number, line in enumerate(GUIDE.read_text(encoding="utf-8").splitlines(), start=1):
        match = ENV_SET.match(line)
        if match:
            words = shlex.split(match.group(1))
            assert len(words) == 2, f"docs/deploy.md:{number}: expected `azd env set NAME VALUE`"
            found.append((number, words[0], words[1]))
    return found


def table_rows() -> list[list[str]]:
    text = GUIDE.read_text(encoding="utf-8")
    start = text.index("<!-- parameters:begin -->")
    end = text.index("<!-- parameters:end -->")
    lines = [line for line in text[start:end].splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def code(cell: str) -> str:
    match = CODE.fullmatch(cell)
    assert match, f"expected one `code` value, got {cell!r}"
    return match.group(1)


def render_default(parameter: dict[str, Any]) -> str:
    if "default" not in parameter or parameter["default"] is None:
        return "(required)"
    default = parameter["default"]
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if default == "":
        return "empty"
    return f"`{default}`"


def test_parameters_file_names_only_main_bicep_parameters() -> None:
    parameters = bicep_parameters()
    mapped = set(variable_to_parameter().values())
    assert mapped <= set(parameters), f"not in main.bicep: {mapped - set(parameters)}"
    required = {name for name, body in parameters.items() if body.get("default") is None}
    assert required <= mapped, f"main.bicep parameters without a default nor a value: {required - mapped}"


def test_the_guide_sets_only_mapped_variables_with_allowed_values() -> None:
    mapping = variable_to_parameter()
    parameters = bicep_parameters()
    lines = env_set_lines()
    assert len(lines) >= 5, "the guide shows how to set parameters"
    modes = {mode.value for mode in Mode}
    for number, variable, value in lines:
        assert variable in mapping, f"docs/deploy.md:{number}: {variable} is not in main.parameters.json"
        parameter = parameters[mapping[variable]]
        allowed = allowed_values(parameter)
        if allowed is not None:
            assert value in allowed, f"docs/deploy.md:{number}: {variable}={value!r} is not one of {allowed}"
        if parameter["type"] == "bool":
            assert value in ("true", "false"), f"docs/deploy.md:{number}: {variable} is a bool"
        if mapping[variable] == "restrictedScopes":
            for entry in value.split(","):
                assert entry.lower().startswith("/subscriptions/"), f"docs/deploy.md:{number}: {entry!r}"
                if "=" in entry:
                    mode = entry.rsplit("=", 1)[1]
                    assert mode in modes, f"docs/deploy.md:{number}: {mode!r} is not a mode"


def test_the_parameter_table_matches_main_bicep_and_the_parameters_file() -> None:
    mapping = variable_to_parameter()
    parameters = bicep_parameters()
    rows = table_rows()
    listed = set()
    for parameter_cell, variable_cell, default_cell, meaning in rows:
        parameter, variable = code(parameter_cell), code(variable_cell)
        assert parameter in parameters, f"table: {parameter} is not a parameter of main.bicep"
        assert mapping.get(variable) == parameter, f"table: {variable} does not set {parameter}"
        assert default_cell == render_default(parameters[parameter]), f"table: default of {parameter}"
        assert meaning, f"table: {parameter} has no description"
        listed.add(parameter)
    missing = set(mapping.values()) - listed
    assert not missing, f"parameters of main.parameters.json missing from the guide's table: {missing}"


@pytest.mark.parametrize("heading", ["azd up", "audit mode", "strip", "Add a subscription", "costs"])
def test_the_guide_covers(heading: str) -> None:
    headings = [line for line in GUIDE.read_text(encoding="utf-8").splitlines() if line.startswith("## ")]
    assert any(heading.lower() in line.lower() for line in headings), f"no section about {heading!r}"
