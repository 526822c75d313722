"""Dry runs over REST (issue 15, ``-WhatIf``'s back end): ``?dry_run=ID`` validates and answers as if applied,
changes nothing (store, engine, kernel objects), and its later requests see its earlier ones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyvswitch.config.diff import describe, diff
from tests.component.test_api import Daemon, errors


@pytest.fixture
def d(tmp_path: Path) -> Iterator[Daemon]:
    daemon = Daemon(tmp_path / "config.db")
    yield daemon
    daemon.store.close()


def state(d: Daemon) -> tuple[Any, ...]:
    """Everything a real change would touch: the desired state, the store's audit trail, the engine's
    configuration and the (fake) kernel's links and namespaces."""
    return (
        d.client.get("/v1/config").json(),
        len(d.client.get("/v1/history").json()),
        len(d.engine.applied),
        list(d.lab.calls),
    )


def test_a_dry_run_answers_as_if_applied_and_changes_nothing(d: Daemon) -> None:
    d.client.post("/v1/switches", json={"name": "lab", "type": "Internal"})
    before = state(d)
    r = d.client.post("/v1/switches?dry_run=t1", json={"name": "ext", "type": "Internal"})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "ext" and r.json()["ports"] == ["ext"]  # the answer a real request would get
    assert r.headers["pyvswitch-dry-run"] == "t1"
    # A later request of the same dry run sees the first: a VM on the switch that exists only there.
    r = d.client.post("/v1/vms?dry_run=t1", json={"name": "web01", "switch": "ext"})
    assert r.status_code == 201, r.text
    assert d.client.get("/v1/switches/ext?dry_run=t1").status_code == 200
    assert d.client.get("/v1/switches/ext").status_code == 404  # nobody else sees it
    assert state(d) == before
    view = d.client.get("/v1/dry-runs/t1").json()
    assert view["summaries"] == ["add switch ext (Internal)", "add namespace VM web01"]
    added = {(c["kind"], c["name"]) for c in view["changes"] if c["op"] == "add"}
    assert added == {("switches", "ext"), ("ports", "ext"), ("ports", "web01-eth0"), ("vms", "web01")}
    assert view["not_run"] == []
    assert d.client.delete("/v1/dry-runs/t1").status_code == 200
    assert d.client.get("/v1/dry-runs/t1").status_code == 404


def test_a_dry_run_is_refused_exactly_as_the_real_request(d: Daemon) -> None:
    d.client.post("/v1/switches", json={"name": "lab"})
    before = state(d)
    real = d.client.post("/v1/ports", json={"name": "p1", "switch": "nope", "kind": "vm", "vm": "x"})
    dry = d.client.post(
        "/v1/ports?dry_run=t2", json={"name": "p1", "switch": "nope", "kind": "vm", "vm": "x"}
    )
    assert real.status_code == dry.status_code and real.status_code >= 400
    assert errors(dry) == errors(real)
    dup = d.client.post("/v1/switches?dry_run=t2", json={"name": "lab"})
    assert dup.status_code == 409
    assert d.client.get("/v1/dry-runs/t2").json()["changes"] == []
    assert state(d)[1:] == before[1:]  # the real refusal saved nothing either


def test_a_change_of_fields_is_shown_leaf_by_leaf(d: Daemon) -> None:
    d.client.post("/v1/switches", json={"name": "lab"})
    d.client.post("/v1/vms", json={"name": "web01", "switch": "lab"})
    r = d.client.patch(
        "/v1/ports/web01-eth0?dry_run=t3", json={"vlan": {"mode": "Access", "access_vlan_id": 20}}
    )
    assert r.status_code == 200 and r.json()["vlan"]["access_vlan_id"] == 20
    assert d.client.get("/v1/ports/web01-eth0").json()["vlan"]["mode"] == "Untagged"
    (change,) = d.client.get("/v1/dry-runs/t3").json()["changes"]
    line = describe(change)
    assert line.startswith("~ ports web01-eth0: ")
    assert 'vlan.mode "Untagged" -> "Access"' in line and "vlan.access_vlan_id null -> 20" in line


def test_routes_that_act_outside_the_configuration_are_not_run(d: Daemon) -> None:
    d.client.post("/v1/switches", json={"name": "lab"})
    d.client.post("/v1/vms", json={"name": "web01", "switch": "lab"})
    r = d.client.post("/v1/traces?dry_run=t4", json={"port": "web01-eth0", "count": 5})
    assert r.status_code == 200 and r.json()["run"] is False
    assert r.json()["operation"] == "POST /v1/traces"
    assert r.headers["pyvswitch-dry-run"] == "not-run"
    # (FakeEngine has no trace_start: run for real, this request would have failed with 500)
    assert d.client.get("/v1/dry-runs/t4").json()["not_run"] == ["POST /v1/traces"]
    # The what-if trace changes nothing: it runs as usual.
    spec = d.client.get("/openapi.json").json()
    assert spec["paths"]["/v1/whatif"]["post"].get("x-pyvswitch-read-only") is True


def test_every_changing_route_says_what_a_dry_run_does_with_it(d: Daemon) -> None:
    """The OpenAPI document marks each configuration route as rehearsable and documents ``dry_run`` on it;
    the changing routes without the mark are exactly those that act outside the configuration."""
    spec = d.client.get("/openapi.json").json()
    rehearsed, not_run = set(), set()
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method not in ("post", "put", "patch", "delete"):
                continue
            if op.get("x-pyvswitch-dry-run"):
                assert any(p["name"] == "dry_run" for p in op.get("parameters", [])), (method, path)
                rehearsed.add(f"{method.upper()} {path}")
            elif not op.get("x-pyvswitch-read-only"):
                not_run.add(f"{method.upper()} {path}")
    assert {"POST /v1/switches", "PATCH /v1/ports/{name}", "DELETE /v1/teams/{name}/members/{member}",
            "PUT /v1/config", "PATCH /v1/qos/dcb"} <= rehearsed  # fmt: skip
    assert all(p.startswith(("/v1/captures", "/v1/netevent", "/v1/migrations", "/v1/sriov/ports", "/v1/vnet",
                             "/v1/traces", "/v1/log", "/v1/dashboard", "/v1/vms/{name}/exec"))
               for p in (op.split(" ", 1)[1] for op in not_run)), sorted(not_run)  # fmt: skip


def test_a_bad_dry_run_id_is_refused_naming_the_parameter(d: Daemon) -> None:
    r = d.client.post("/v1/switches?dry_run=" + "x" * 65, json={"name": "lab"})
    assert r.status_code == 400 and errors(r)[0][0] == "dry_run"
    assert d.client.get("/v1/switches/lab").status_code == 404


def test_put_config_dry_run_validates_the_whole_file(d: Daemon) -> None:
    d.client.post("/v1/switches", json={"name": "lab"})
    cfg = d.client.get("/v1/config").json()
    cfg["switches"].append({"name": "ext", "type": "Internal"})
    r = d.client.put("/v1/config?dry_run=t5", json=cfg)
    assert r.status_code == 200, r.text
    assert [s["name"] for s in d.client.get("/v1/config").json()["switches"]] == ["lab"]
    assert ("switches", "ext") in {
        (c["kind"], c["name"]) for c in d.client.get("/v1/dry-runs/t5").json()["changes"]
    }


def test_diff_names_objects_and_values() -> None:
    old = {"switches": [{"name": "a", "notes": ""}], "dcb": {"willing": False}}
    new = {"switches": [{"name": "a", "notes": "x"}, {"name": "b"}], "dcb": {"willing": True}}
    out = diff(old, new)
    assert [(c["op"], c["kind"], c["name"]) for c in out] == [
        ("change", "dcb", ""), ("change", "switches", "a"), ("add", "switches", "b")]  # fmt: skip
    assert describe(out[0]) == "~ dcb: willing false -> true"
    assert describe(out[2]) == "+ switches b"
