"""SR-IOV: VF allocation by weight, the Software <-> VF state machine, and the NIC switch's socket filters."""

from __future__ import annotations

from pyvswitch.config.schema import (
    HostConfig,
    PortConfig,
    PortKind,
    SriovAdapterConfig,
    SwitchConfig,
    SwitchType,
    VlanConfig,
    VlanMode,
)
from pyvswitch.datapath.nicswitch import (
    NicSwitchPlan,
    VfPort,
    run_filter,
    tc_commands,
    uplink_filter,
    vf_port_filter,
)
from pyvswitch.switch.iov import IovPath, IovReason, IovState, RuntimeFacts, plan

VF_A = "02:15:5d:00:00:0a"
VF_B = "02:15:5d:00:00:0b"
SOFT = "02:15:5d:00:00:50"
LAN = "02:00:00:00:00:99"


def frame(dst: str, src: str) -> bytes:
    return bytes.fromhex(dst.replace(":", "")) + bytes.fromhex(src.replace(":", "")) + b"\x08\x00" + bytes(46)


def vm(name: str, weight: int, n: int, **kw: object) -> PortConfig:
    return PortConfig(
        name=name,
        kind=PortKind.VM,
        vm=name,
        switch="ext",
        interface=f"pv{n:08d}",
        mac=f"02:15:5d:00:01:{n:02x}",
        iov_weight=weight,
        **kw,  # type: ignore[arg-type]
    )


def host(ports: list[PortConfig], vfs: int = 2, iov: bool = True, enabled: bool = True) -> HostConfig:
    return HostConfig(
        switches=[SwitchConfig(name="ext", type=SwitchType.EXTERNAL, net_adapter="eth9", enable_iov=iov)],
        ports=[PortConfig(name="ext-uplink", kind=PortKind.UPLINK, switch="ext", interface="eth9"), *ports],
        sriov_adapters=[SriovAdapterConfig(name="eth9", num_vfs=vfs, enabled=enabled)],
    )


def test_scarce_vfs_go_to_highest_weight_ties_by_name() -> None:
    p = plan(host([vm("c", 10, 1), vm("a", 50, 2), vm("b", 50, 3), vm("d", 0, 4)]))
    assert [n for n, s in sorted(p.items()) if s.path is IovPath.VF] == ["a", "b"]
    assert p["c"].reason is IovReason.NO_VF
    assert p["d"].reason is IovReason.NOT_REQUESTED
    assert {p["a"].vf, p["b"].vf} == {0, 1}


def test_freed_vf_is_reassigned_and_holders_keep_their_function() -> None:
    first = plan(host([vm("a", 50, 1), vm("b", 40, 2), vm("c", 30, 3)]))
    assert first["c"].path is IovPath.SOFTWARE
    second = plan(host([vm("a", 0, 1), vm("b", 40, 2), vm("c", 30, 3)]), previous=first)
    assert second["b"].vf == first["b"].vf
    assert second["c"].path is IovPath.VF and second["c"].vf == first["a"].vf


def test_reasons_for_software_path() -> None:
    assert plan(host([vm("a", 50, 1)], iov=False))["a"].reason is IovReason.SWITCH_NOT_IOV
    assert plan(host([vm("a", 50, 1)], enabled=False))["a"].reason is IovReason.NO_ADAPTER
    tagged = vm("a", 50, 1, vlan=VlanConfig(mode=VlanMode.ACCESS, access_vlan_id=10))
    assert plan(host([tagged]))["a"].reason is IovReason.VLAN
    cfg = host([vm("a", 50, 1)])
    assert plan(cfg, RuntimeFacts(uplinks_down=frozenset({"eth9"})))["a"].reason is IovReason.UPLINK_DOWN
    assert plan(cfg, RuntimeFacts(revoked=frozenset({"a"})))["a"].reason is IovReason.REVOKED
    assert plan(cfg, RuntimeFacts(migrating=frozenset({"a"})))["a"].reason is IovReason.MIGRATING


def test_state_counts_transitions_releases_first() -> None:
    st = IovState()
    cfg = host([vm("a", 50, 1), vm("b", 40, 2)], vfs=1)
    ch = st.update(plan(cfg))
    assert [(t.port, t.to) for t in ch] == [("a", IovPath.VF)]
    ch = st.update(plan(host([vm("a", 0, 1), vm("b", 40, 2)], vfs=1), previous=st.ports))
    assert [(t.port, t.to) for t in ch] == [("a", IovPath.SOFTWARE), ("b", IovPath.VF)]
    assert st.transitions == {"Software->VF": 2, "VF->Software": 1}


def test_uplink_socket_ignores_unicast_to_vfs_only() -> None:
    prog = uplink_filter([VF_A, VF_B])
    assert run_filter(prog, frame(VF_A, LAN)) == 0
    assert run_filter(prog, frame(VF_B, LAN)) == 0
    assert run_filter(prog, frame(SOFT, LAN)) != 0
    assert run_filter(prog, frame("ff:ff:ff:ff:ff:ff", LAN)) != 0
    assert run_filter(prog, frame("02:15:5d:00:00:0c", LAN)) != 0  # same first 4 bytes, other MAC
    assert run_filter(uplink_filter([]), frame(VF_A, LAN)) != 0


def test_vf_port_socket_accepts_only_what_tc_lets_through() -> None:
    prog = vf_port_filter(VF_A, [SOFT])
    assert run_filter(prog, frame(LAN, VF_A)) == 0  # to the wire: the NIC switch's
    assert run_filter(prog, frame(VF_B, VF_A)) == 0  # hairpin to another VF
    assert run_filter(prog, frame(SOFT, VF_A)) != 0  # to a software port: through the switch
    assert run_filter(prog, frame("ff:ff:ff:ff:ff:ff", VF_A)) != 0  # flooded to software ports too
    assert run_filter(prog, frame("01:00:5e:00:00:01", VF_A)) != 0
    assert run_filter(prog, frame(LAN, "02:15:5d:de:ad:00")) != 0  # spoofed: the switch's guard drops it
    assert run_filter(prog, b"\x02") == 0  # runt


def test_tc_program_shape() -> None:
    cmds = tc_commands(NicSwitchPlan("eth9", (VfPort(VF_A, "pv1"), VfPort(VF_B, "pv2")), (SOFT,)))
    up = [" ".join(c) for c in cmds["eth9"]]
    assert "redirect dev pv1" in up[0] and "at -14" in up[0] and "at -12" in up[0]
    assert "mirror dev pv1" in up[-1] and "mirror dev pv2" in up[-1]
    a = [" ".join(c) for c in cmds["pv1"]]
    assert "redirect dev pv2" in a[0]
    assert "classid" in a[1]  # software MAC: classified, no action, continues to pyvswitch
    assert "mirror dev eth9" in a[2]
    assert "redirect dev eth9" in a[3] and "at -8" in a[3]
