"""The product stands alone: ``remediation/`` and ``function_app.py`` import nothing from the local
stand-in (``sim/``, ``localazure/``), which is never deployed (``.funcignore`` leaves it out).

Two views of one promise: the source, read (an import anywhere, even one inside a function, is
found), and the product, run in a Python where ``sim`` and ``localazure`` cannot be imported (every
module imported, the command's help and each subcommand's, and a command that does work).
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAND_IN = ("sim", "localazure")
PRODUCT_FILES = sorted([ROOT / "function_app.py", *(ROOT / "remediation").rglob("*.py")])

# Run in a fresh interpreter: a finder first on sys.meta_path refuses the stand-in's packages and
# notes every attempt (one caught by the product would still be an import of the stand-in).
_WITHOUT_STAND_IN = """
import argparse, importlib, json, pkgutil, sys
from importlib.metadata import entry_points

BLOCKED = {blocked!r}
attempts = []

class NoStandIn:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            attempts.append(name)
            raise ImportError(f"{{name}} is not part of the deployed app")
        return None

sys.meta_path.insert(0, NoStandIn())
for name in list(sys.modules):
    if name.split(".")[0] in BLOCKED:
        del sys.modules[name]

import function_app
import remediation

modules = ["function_app"]
for info in pkgutil.walk_packages(remediation.__path__, "remediation."):
    importlib.import_module(info.name)
    modules.append(info.name)

(script,) = [ep for ep in entry_points(group="console_scripts") if ep.name == "remediation"]
main = script.load()
from remediation.cli import build_parser

def commands(parser, prefix):
    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, [*prefix, name])

helps = {{}}
for command in commands(build_parser(), []):
    try:
        code = main([*command, "--help"])
    except SystemExit as exit:
        code = exit.code
    helps[" ".join(command)] = code

code = main(["whatif", "--inventory", {inventory!r}])
print(json.dumps({{"modules": modules, "helps": helps, "whatif": code, "attempts": attempts}}))
"""


def _imported_names(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.append(node.args[0].value)
    return names


def test_no_product_module_imports_the_stand_in_anywhere_in_its_source() -> None:
    assert len(PRODUCT_FILES) > 10
    found = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in PRODUCT_FILES
        for name in _imported_names(ast.parse(path.read_text(encoding="utf-8")))
        if name.split(".")[0] in STAND_IN
    ]
    assert found == []


def test_the_import_scan_finds_lazy_imports() -> None:
    source = "def f():\n    from sim.cli import serve\n    import localazure.demo\n    __import__('sim')\n"
    assert _imported_names(ast.parse(source)) == ["sim.cli", "localazure.demo", "sim"]


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    import arm_docs as docs

    path = tmp_path / "inventory.json"
    path.write_text(json.dumps([docs.scale_set("web", 1, {"remediation.mode": "strip"})]))
    return path


def test_the_product_imports_and_its_commands_run_with_the_stand_in_absent(inventory: Path) -> None:
    code = _WITHOUT_STAND_IN.format(blocked=STAND_IN, inventory=str(inventory))
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    expected = {"function_app"} | {
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in PRODUCT_FILES
        if path.name not in ("__init__.py", "function_app.py")
    }
    assert set(result["modules"]) == expected
    assert result["attempts"] == []
    helps: dict[str, int] = result["helps"]
    assert {"", "audit", "audit verify", "replay", "whatif", "sweep", "report", "doctor"} <= set(helps)
    assert helps == dict.fromkeys(helps, 0)
    assert result["whatif"] == 0


def test_the_remediation_command_carries_none_of_the_stand_in_verbs() -> None:
    from remediation.cli import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(commands.choices) == {"audit", "replay", "whatif", "sweep", "report", "doctor"}
    assert "--demo" not in commands.choices["audit"].format_help()
