"""The generated reference pages (src/pyvswitch/docsgen.py) against their sources: every cmdlet with every
parameter, every OpenAPI operation."""

from __future__ import annotations

import re
from typing import Any

import pytest

from pyvswitch import docsgen
from pyvswitch.cli.cmdlet.equivalents import EQUIVALENTS
from pyvswitch.cli.cmdlets import CMDLETS


@pytest.fixture(scope="module")
def cmdlet_page() -> str:
    return docsgen.cmdlet_reference()


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return docsgen.openapi_document()


def sections(page: str) -> dict[str, str]:
    """The page's level-2 sections by heading text (without its {#id})."""
    out = {}
    for block in re.split(r"^## ", page, flags=re.M)[1:]:
        heading, _, body = block.partition("\n")
        out[heading.split(" {#")[0].strip()] = body
    return out


def test_every_cmdlet_has_a_section_with_every_parameter_and_its_equivalent(cmdlet_page: str) -> None:
    found = sections(cmdlet_page)
    assert len(CMDLETS) > 50
    for c in CMDLETS:
        assert c.name in found, f"{c.name} has no section"
        body = found[c.name]
        rows = {m.group(1) for m in re.finditer(r"^\| `-([A-Za-z0-9_]+)` \|", body, flags=re.M)}
        assert rows == {p.name for p in c.params}, c.name
        assert c.syntax() in body
        equivalent = EQUIVALENTS[c.name].split(" ; ")[0].split(" (")[0]
        assert equivalent in body, c.name


def test_a_parameter_row_says_type_position_mandatory_range_and_default(cmdlet_page: str) -> None:
    body = sections(cmdlet_page)["New-NetLbfoTeam"]
    assert (
        "| `-TeamingMode` | String | named | no | SwitchIndependent, Static, Lacp | SwitchIndependent |"
        in body
    )
    assert "| `-Name` | String | 0 | yes |" in body
    vlan = sections(cmdlet_page)["Set-VMNetworkAdapterVlan"]
    assert "| `-VlanId` | Int32 | named | no | 1..4094 | — | -AccessVlanId |" in vlan


def test_every_openapi_operation_is_in_the_rest_reference(openapi: dict[str, Any]) -> None:
    page = docsgen.rest_reference(openapi)
    ops = list(docsgen.operations(openapi))
    assert len(ops) > 50
    headings = set(re.findall(r"^### `([A-Z]+ \S+)`", page, flags=re.M))
    assert headings == {f"{m} {p}" for m, p, _ in ops}
    for name in openapi["components"]["schemas"]:
        assert f"### {name} {{#schema-" in page, name


def test_an_operation_shows_its_parameters_body_and_typed_responses() -> None:
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/v1/things/{name}": {
                "patch": {
                    "summary": "Change Thing",
                    "description": "Changes <one> thing.",
                    "parameters": [
                        {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                        {"name": "dry_run", "in": "query", "schema": {"type": "boolean", "default": False}},
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}},
                    },
                    "responses": {
                        "200": {
                            "description": "OK",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/Thing"},
                                    }
                                }
                            },
                        }
                    },
                }
            }
        },
        "components": {"schemas": {"Thing": {"properties": {"n": {"type": "integer", "default": 3}}}}},
    }
    page = docsgen.rest_reference(doc)
    assert "### `PATCH /v1/things/{name}`" in page and "## things" in page
    assert "Changes &lt;one&gt; thing." in page
    assert "| `dry_run` | query | no | boolean | default `False` |" in page
    assert "Request body (application/json, required): [Thing](#schema-thing)" in page
    assert "| 200 | OK | list[[Thing](#schema-thing)] |" in page
    assert "| `n` | integer | no | `3` |" in page


def test_building_the_app_for_its_document_leaves_nothing_in_the_working_directory(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    docsgen.openapi_document()
    assert list(tmp_path.iterdir()) == []
