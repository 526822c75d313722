"""A burst of random and truncated frames on a real port is counted and dropped; forwarding continues."""

from __future__ import annotations

import pytest

from tests.system.conftest import Host, ns_python, ping

pytestmark = pytest.mark.system

BURST = """
import random, socket
rng = random.Random(11)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
sent = 0
for i in range(3000):
    kind = i % 3
    if kind == 0:
        frame = rng.randbytes(rng.randrange(1, 14))                          # runt
    elif kind == 1:
        frame = bytes.fromhex("ffffffffffff020000000001") + b"\\x81\\x00" + rng.randbytes(rng.randrange(0, 4))  # cut tag
    else:
        frame = rng.randbytes(rng.randrange(14, 1500))                       # garbage
    try:
        s.send(frame)
        sent += 1
    except OSError:
        pass
print(sent)
"""


def test_malformed_burst_counted_and_forwarding_continues(host: Host) -> None:
    host.cli("switch", "add", "sw", "--type", "private")
    a = host.vm_add("sw", "10.42.0.1/24")
    host.vm_add("sw", "10.42.0.2/24")
    assert ping(a, "10.42.0.2").returncode == 0
    sent = int(ns_python(a, BURST))
    # The kernel refuses to send runts shorter than an Ethernet header (runts are covered by component tests).
    assert sent >= 2000
    assert ping(a, "10.42.0.2").returncode == 0
    counters = host.json("counters")
    sw = counters["switches"]["sw"]  # type: ignore[index]
    assert counters["loop_errors"] == 0  # type: ignore[index]
    # The kernel pads runts and drops cut tags itself on veth; of the garbage that reached us, about half has a
    # multicast source MAC and most of the rest goes to unknown MACs: all counted by reason, none crashed us.
    assert sw["drops"].get("source-multicast", 0) > 200, sw["drops"]
    assert sum(sw["drops"].values()) > 500, sw["drops"]
