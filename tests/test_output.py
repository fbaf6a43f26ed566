"""Specification of the output formats the commands share (``--output``/``-o``, ``--query``), as
``az`` has them."""

from __future__ import annotations

import csv
import io
import json

import pytest

from remediation.output import QueryError, render

EV = ["named as the set names"]
ROWS = [
    {"scale_set": "/s/web", "instance": "web_1", "public_ip": ["/s/ip1"], "mode": "strip", "evidence": EV},
    {"scale_set": "/s/web", "instance": "app-vm-01", "public_ip": [], "mode": "strip", "evidence": EV},
]


def test_json_is_the_value_and_a_query_picks_from_it() -> None:
    assert json.loads(render(ROWS, "json")) == ROWS
    assert json.loads(render(ROWS, "json", "[?mode=='strip'].instance")) == ["web_1", "app-vm-01"]
    assert json.loads(render(ROWS, "json", "length(@)")) == 2


def test_tsv_is_one_line_per_item_without_a_header() -> None:
    assert render(ROWS, "tsv", "[].[instance, mode]") == "web_1\tstrip\napp-vm-01\tstrip\n"
    lines = render(ROWS, "tsv").splitlines()
    assert lines[0].split("\t") == ["/s/web", "web_1", '["/s/ip1"]', "strip", '["named as the set names"]']
    assert render([], "tsv") == ""


def test_table_shows_the_scalar_fields_and_a_list_of_scalars_as_result() -> None:
    table = render(ROWS, "table").splitlines()
    assert table[0].split() == ["scale_set", "instance", "mode"], "nested values are left out"
    assert table[2].split() == ["/s/web", "web_1", "strip"]
    assert render(ROWS, "table", "[].instance").splitlines()[0] == "Result"


def test_csv_has_a_header_and_a_row_per_item() -> None:
    rows = list(csv.DictReader(io.StringIO(render(ROWS, "csv"))))
    assert [r["instance"] for r in rows] == ["web_1", "app-vm-01"]
    assert rows[0]["public_ip"] == '["/s/ip1"]'


def test_jsonc_is_json_coloured() -> None:
    coloured = render(ROWS, "jsonc")
    assert "\x1b[" in coloured
    assert json.loads(coloured.replace("\x1b[94m", "").replace("\x1b[32m", "").replace("\x1b[95m", "")
                      .replace("\x1b[36m", "").replace("\x1b[0m", "")) == ROWS  # fmt: skip


def test_a_query_that_is_not_jmespath_is_named() -> None:
    with pytest.raises(QueryError, match=r"--query '\[\?mode==': "):
        render(ROWS, "json", "[?mode==")
