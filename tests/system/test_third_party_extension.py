"""A third-party extension package, built and installed during the test, in a real pyvswitchd (EX-01..03, EX-16).

The package (tests/fixtures/pyvswitch_ext_sample) is installed into a temporary directory that only the
daemon's PYTHONPATH sees, so the project's venv is left as it was.
"""

from __future__ import annotations

import pytest

from tests.system.conftest import Host, ping

pytestmark = pytest.mark.system


def stack(h: Host, switch: str) -> dict[str, dict[str, object]]:
    rows = h.json("extension", "show", switch)
    assert isinstance(rows, list)
    return {r["name"]: r for r in rows}


def test_discovered_enabled_reordered_sees_vm_traffic_and_survives_a_crash(ext_host: Host) -> None:
    h = ext_host
    installed = {r["name"]: r for r in h.json("extension", "list")}  # type: ignore[union-attr]
    assert {"flowcount", "icmpcount", "no-icmp", "crashy"} <= installed.keys()
    assert (
        installed["flowcount"]["kind"] == "capture"
        and installed["flowcount"]["distribution"] == "pyvswitch-ext-sample"
    )

    h.cli("switch", "add", "sw", "--type", "private")
    a = h.vm_add("sw", "10.91.0.1/24")
    b = h.vm_add("sw", "10.91.0.2/24")
    st = stack(h, "sw")
    # Installed extensions start disabled; the built-in firewall (Hyper-V's WFP) starts enabled (EX-02).
    assert {n for n, r in st.items() if r["enabled"]} == {"pyvswitch-firewall"}

    h.cli("extension", "enable", "sw", "flowcount")
    assert ping(a, "10.91.0.2").returncode == 0
    pairs = stack(h, "sw")["flowcount"]["status"]["pairs"]  # type: ignore[index]
    mac_a, mac_b = (h.json("vm", "show", v)["ports"][0]["mac"] for v in (a, b))  # type: ignore[index]
    assert pairs.get(f"{mac_a}>{mac_b}", 0) >= 3 and pairs.get(f"{mac_b}>{mac_a}", 0) >= 3  # VM-to-VM (EX-16)

    h.cli("extension", "enable", "sw", "crashy")
    assert ping(a, "10.91.0.2").returncode == 0  # a crashing extension does not stop forwarding
    assert stack(h, "sw")["crashy"]["errors"] > 0  # type: ignore[operator]

    # Order counter-then-blocker: the counter sees the ICMP that the blocker then drops.
    h.cli("extension", "order", "sw", "icmpcount", "no-icmp")
    h.cli("extension", "enable", "sw", "icmpcount", "no-icmp")
    assert ping(a, "10.91.0.2", count=2, timeout_s=1).returncode != 0
    st = stack(h, "sw")
    seen = st["icmpcount"]["status"]["icmp"]  # type: ignore[index]
    assert seen >= 2 and st["no-icmp"]["drops"] == {"icmp-blocked": seen}
    # Reordered at run time: the blocker first, and the counter sees nothing more.
    h.cli("extension", "order", "sw", "no-icmp", "icmpcount")
    names = [r["name"] for r in h.json("extension", "show", "sw")]  # type: ignore[union-attr,index]
    assert names.index("no-icmp") < names.index("icmpcount")
    assert ping(a, "10.91.0.2", count=2, timeout_s=1).returncode != 0
    assert stack(h, "sw")["icmpcount"]["status"]["icmp"] == seen  # type: ignore[index]

    h.cli("extension", "disable", "sw", "no-icmp")
    assert ping(a, "10.91.0.2").returncode == 0
    bad = h.cli("extension", "enable", "sw", "nosuch", check=False)
    assert bad.returncode == 1 and "nosuch" in bad.stderr
