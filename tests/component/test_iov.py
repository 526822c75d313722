"""SR-IOV management with a fake kernel: the order of socket-filter, tc and switch-flag changes on every
Software <-> VF transition (some forwarder must own every frame), and what the routes report."""

from __future__ import annotations

from pyvswitch.config.schema import (
    HostConfig,
    PortConfig,
    PortKind,
    SriovAdapterConfig,
    SwitchConfig,
    SwitchType,
)
from pyvswitch.daemon.iov import IovManager
from pyvswitch.datapath.nicswitch import Insn, NicSwitchPlan, run_filter

VF_MAC = "02:15:5d:00:01:01"
SOFT_MAC = "02:15:5d:00:01:02"
LAN = "02:00:00:00:00:99"


def frame(dst: str, src: str) -> bytes:
    return bytes.fromhex(dst.replace(":", "") + src.replace(":", "")) + b"\x08\x00" + bytes(46)


class FakeKernel:
    """Records every call in one log; socket filters by port; tc plans by uplink."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self.filters: dict[str, list[Insn] | None] = {}
        self.tc: dict[str, NicSwitchPlan] = {}
        self.flags: dict[str, dict[str, frozenset[str]]] = {}
        self.fds = {"ext-uplink": 10, "a-eth0": 11, "b-eth0": 12}

    # engine
    def port_fileno(self, port: str) -> int | None:
        return self.fds.get(port)

    def set_nic_switched(self, switch: str, served: dict[str, frozenset[str]]) -> None:
        self.log.append(("flags", ",".join(sorted(served))))
        self.flags[switch] = served

    # nic switch
    def program(self, plan: NicSwitchPlan) -> None:
        self.log.append(("tc", plan.uplink + ":" + ",".join(v.interface for v in plan.vfs)))
        self.tc[plan.uplink] = plan

    def clear(self, dev: str) -> None:
        self.log.append(("tc-clear", dev))
        self.tc.pop(dev, None)

    # socket filters
    def attach(self, fd: int, prog: list[Insn] | None) -> None:
        port = next(p for p, f in self.fds.items() if f == fd)
        self.log.append(("filter", port + ("" if prog else ":none")))
        self.filters[port] = prog


def config(weight: int, enabled: bool = True) -> HostConfig:
    return HostConfig(
        switches=[SwitchConfig(name="ext", type=SwitchType.EXTERNAL, net_adapter="eth9", enable_iov=True)],
        ports=[
            PortConfig(name="ext-uplink", kind=PortKind.UPLINK, switch="ext", interface="eth9"),
            PortConfig(
                name="a-eth0",
                kind=PortKind.VM,
                vm="a",
                switch="ext",
                interface="pva",
                mac=VF_MAC,
                iov_weight=weight,
            ),
            PortConfig(name="b-eth0", kind=PortKind.VM, vm="b", switch="ext", interface="pvb", mac=SOFT_MAC),
        ],
        sriov_adapters=[SriovAdapterConfig(name="eth9", num_vfs=4, enabled=enabled)],
    )


def manager(k: FakeKernel, holder: list[HostConfig], carrier: dict[str, bool] | None = None) -> IovManager:
    up = carrier if carrier is not None else {}

    def commit(cfg: HostConfig, summary: str) -> HostConfig:
        holder[0] = cfg
        return cfg

    return IovManager(k, lambda: holder[0], commit, nic=k, attach=k.attach, carrier=lambda n: up.get(n, True))


def accepts(prog: list[Insn] | None, data: bytes) -> bool:
    return prog is None or run_filter(prog, data) != 0


def test_assign_programs_tc_before_pyvswitch_lets_go() -> None:
    k = FakeKernel()
    holder = [config(50)]
    m = manager(k, holder)
    m.reconcile()
    assert m.port("a-eth0")["path"] == "VF" and m.port("a-eth0")["policies"] == "bypassed"
    tc_at = k.log.index(("tc", "eth9:pva"))
    tighten = [i for i, e in enumerate(k.log) if e in (("filter", "a-eth0"), ("flags", "a-eth0,ext-uplink"))]
    assert tighten and min(tighten) > tc_at, k.log
    assert not accepts(k.filters["ext-uplink"], frame(VF_MAC, LAN))  # the NIC switch delivers it
    assert accepts(k.filters["ext-uplink"], frame(SOFT_MAC, LAN))
    assert not accepts(k.filters["a-eth0"], frame(LAN, VF_MAC))
    assert accepts(k.filters["a-eth0"], frame(SOFT_MAC, VF_MAC))  # VF -> software port: through the switch
    assert k.flags["ext"] == {"ext-uplink": frozenset({"a-eth0"}), "a-eth0": frozenset({"ext-uplink"})}
    assert k.tc["eth9"].software_macs == (SOFT_MAC,)


def test_fallback_gives_frames_back_before_tc_goes() -> None:
    k = FakeKernel()
    holder = [config(50)]
    m = manager(k, holder)
    m.reconcile()
    k.log.clear()
    holder[0] = config(0)  # Set-VMNetworkAdapter -IovWeight 0
    m.reconcile()
    assert m.port("a-eth0")["reason"] == "IovWeightZero"
    relax = k.log.index(("filter", "a-eth0:none"))
    clear = k.log.index(("tc-clear", "eth9"))
    assert relax < clear and k.log.index(("flags", "")) < clear, k.log
    assert k.log.index(("filter", "ext-uplink:none")) < clear
    assert ("tc-clear", "pva") in k.log
    assert m.status()["transitions"] == {"Software->VF": 1, "VF->Software": 1}


def test_carrier_disable_revoke_and_migration_fall_back() -> None:
    k = FakeKernel()
    holder = [config(50)]
    carrier = {"eth9": True}
    m = manager(k, holder, carrier)
    m.reconcile()
    carrier["eth9"] = False
    m.reconcile()
    assert m.port("a-eth0")["reason"] == "UplinkDown"
    carrier["eth9"] = True
    m.reconcile()
    assert m.port("a-eth0")["path"] == "VF"
    m.revoke("a-eth0", by="my-forwarder")
    assert m.port("a-eth0")["reason"] == "Revoked" and m.port("a-eth0")["revoked_by"] == "my-forwarder"
    m.restore("a-eth0")
    m.set_migrating("a-eth0", True)
    assert m.port("a-eth0")["reason"] == "Migrating"
    m.set_migrating("a-eth0", False)
    m.set_adapter("eth9", enabled=False)  # Disable-NetAdapterSriov
    assert m.port("a-eth0")["reason"] == "AdapterSriovDisabled"
    assert "eth9" not in k.tc
    m.set_adapter("eth9", enabled=True, num_vfs=2)
    assert [v["port"] for v in m.vfs()] == ["a-eth0"]
    assert m.adapter("eth9")["num_vfs"] == 2


def test_forwarding_extension_revokes_and_allows_again() -> None:
    from pyvswitch.ext.api import Context

    k = FakeKernel()
    holder = [config(50)]
    m = manager(k, holder)
    m.reconcile()
    ctx = Context("ext", lambda: 0.0, {})
    k.take_vf_requests = lambda: [("ext", p, r) for p, r in ctx.take_vf_requests()]  # type: ignore[attr-defined]
    ctx.revoke_vf("a-eth0")
    m._extension_requests()
    m.reconcile()
    assert m.port("a-eth0")["reason"] == "Revoked"
    assert str(m.port("a-eth0")["revoked_by"]).startswith("extension")
    ctx.revoke_vf("a-eth0", revoke=False)
    m._extension_requests()
    m.reconcile()
    assert m.port("a-eth0")["path"] == "VF"


def test_enable_refuses_what_is_not_a_single_uplink_nic() -> None:
    import pytest

    from pyvswitch.config.schema import TeamConfig
    from pyvswitch.errors import ConflictError, NotFoundError

    k = FakeKernel()
    holder = [config(0).model_copy(update={"sriov_adapters": []})]
    m = manager(k, holder)
    with pytest.raises(ConflictError):
        m.set_adapter("eth7", enabled=True)  # no switch uses it
    with pytest.raises(NotFoundError):
        m.set_adapter("eth7", enabled=False)
    holder[0] = holder[0].model_copy(update={"teams": [TeamConfig(name="t1", members=["eth5", "eth6"])]})
    with pytest.raises(ConflictError, match="team"):
        m.set_adapter("t1", enabled=True)
    assert m.set_adapter("eth9", enabled=True)["num_vfs"] == 8
