"""Hostile input at the REST API (issue 11, security): what-if values out of range, JSON too deep to parse, a
5 MB note, bodies of any size. Every refusal is a 4xx in the documented ``{"errors": [{"field", "message"}]}``
shape, never a 500 or FastAPI's ``{"detail": ...}``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvswitch.config.schema import NOTES_MAX_BYTES, HostConfig, SwitchConfig
from pyvswitch.config.store import Store
from pyvswitch.daemon.api.limits import MAX_BODY_BYTES
from pyvswitch.observe.describe import DescriptionError, build
from tests.component.test_api import Daemon, FakeEngine, errors


class WhatIfEngine(FakeEngine):
    def what_if(self, switch: str, port: str, frame: bytes, tci: int) -> dict[str, object]:
        return {"port": port, "len": len(frame), "tci": tci}


@pytest.fixture
def d(tmp_path: Path) -> Iterator[Daemon]:
    daemon = Daemon(tmp_path / "config.db")
    daemon.engine = WhatIfEngine()
    daemon.service._engine = daemon.engine  # type: ignore[assignment]
    assert daemon.client.post("/v1/switches", json={"name": "sw"}).status_code == 201
    assert daemon.client.post("/v1/vms", json={"name": "web", "switch": "sw"}).status_code == 201
    yield daemon
    daemon.store.close()


def whatif(d: Daemon, frame: str) -> tuple[int, object]:
    r = d.client.post("/v1/whatif", json={"port": "web-eth0", "frame": frame})
    return r.status_code, r.json()


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ("udp dport=99999", "frame.dport"),
        ("tcp sport=-1", "frame.sport"),
        ("len=abc", "frame.len"),
        ("len=99999999999", "frame.len"),  # was padded: a 100 GB frame
        ("vlan=4095", "frame.vlan"),
        ("vlan=-1", "frame.vlan"),  # was -1: silently untagged
        ("vlan=10 pcp=8", "frame.pcp"),
        ("dst=-00000000001", "frame.dst"),  # int(_, 16) took the sign: OverflowError
        ("src=zz:zz:zz:zz:zz:zz", "frame.src"),
        ("ip=10.0.0.1>::1", "frame.dip"),  # was a frame with a truncated IPv6 address in an IPv4 header
        ("sip=300.1.1.1 udp", "frame.sip"),
        ("sport=" + "9" * 1000, "frame.sport"),  # many digits: refused before int() reads them
        ("ip=10.0.0.1", "frame.ip"),
        ("bogus", "frame"),
    ],
)
def test_whatif_refuses_a_malformed_field_by_name(d: Daemon, frame: str, field: str) -> None:
    """issue 11: POST /v1/whatif answered 500 to dport=99999, sport=-1, len=abc."""
    status, body = whatif(d, frame)
    assert status == 400, body
    assert isinstance(body, dict) and [e["field"] for e in body["errors"]] == [field]


def test_whatif_still_builds_good_frames(d: Daemon) -> None:
    status, body = whatif(d, "tcp dport=65535 sport=0 vlan=4094 pcp=7 len=1514")
    assert status == 200 and body == {"port": "web-eth0", "len": 1514, "tci": (7 << 13) | 4094}
    assert whatif(d, "x" * 1025)[0] == 400  # a description is a few words
    with pytest.raises(DescriptionError) as info:
        build("udp dport=70000")
    assert info.value.field == "dport"


@pytest.mark.parametrize(
    "body",
    ["[" * 100_000 + "]" * 100_000, '{"a":' * 5000 + "1" + "}" * 5000, "not json", '{"name": '],
    ids=["deep-list", "deep-object", "not-json", "truncated"],
)
def test_unparsable_bodies_get_the_errors_shape(d: Daemon, body: str) -> None:
    """issue 11: JSON nested deeper than the parser recurses got FastAPI's {"detail": ...}."""
    r = d.client.post("/v1/switches", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert set(r.json()) == {"errors"} and r.json()["errors"][0]["field"] == "body"


def test_unknown_paths_and_methods_get_the_errors_shape(d: Daemon) -> None:
    r = d.client.get("/v1/nosuch")
    assert r.status_code == 404 and errors(r) == [("path", "Not Found")]
    r = d.client.put("/v1/health")
    assert r.status_code == 405 and errors(r)[0][0] == "method" and r.headers["allow"] == "GET"


def test_notes_are_limited_on_create_patch_and_put(d: Daemon) -> None:
    """issue 11: a 5 MB note was accepted, stored and returned by every GET."""
    big = "x" * 5_000_000
    r = d.client.post("/v1/switches", json={"name": "n1", "notes": big})
    assert r.status_code == 400 and errors(r)[0][0] == "notes"
    assert (
        d.client.post("/v1/switches", json={"name": "n1", "notes": "x" * NOTES_MAX_BYTES}).status_code == 201
    )
    r = d.client.patch(
        "/v1/switches/n1", json={"notes": "é" * (NOTES_MAX_BYTES // 2 + 1)}
    )  # bytes, not characters
    assert r.status_code == 400 and errors(r)[0][0] == "notes"
    cfg = d.client.get("/v1/config").json()
    cfg["switches"][0]["notes"] = big
    r = d.client.put("/v1/config", json=cfg)
    assert r.status_code == 400 and "notes" in errors(r)[0][0]


def test_a_long_note_stored_before_the_limit_still_loads(tmp_path: Path) -> None:
    """The limit refuses new values; a row an older version stored must not keep the daemon from starting."""
    store = Store(tmp_path / "old.db")
    old = SwitchConfig(name="old").model_copy(update={"notes": "y" * 10_000})  # copies are not validated
    store.save(HostConfig().model_copy(update={"switches": [old]}), "old version")
    assert store.load().switches[0].notes == "y" * 10_000
    store.close()


def test_request_bodies_are_capped(d: Daemon) -> None:
    """issue 11: there was no request body limit; 413 with the errors shape, declared or chunked."""
    huge = b" " * (MAX_BODY_BYTES + 1)
    r = d.client.post("/v1/switches", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 413 and errors(r)[0][0] == "body"

    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_BODY_BYTES // (1 << 20) + 1):
            yield b" " * (1 << 20)

    r = d.client.post("/v1/switches", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and errors(r)[0][0] == "body"
    # Under the cap, a body is read whole and handled as before.
    pad = " " * (1 << 20)
    r = d.client.post(
        "/v1/switches", content='{"name": "ok1"}' + pad, headers={"content-type": "application/json"}
    )
    assert r.status_code == 201
