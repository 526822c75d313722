"""Port VLAN policy (Hyper-V VL-01..04): compiles a port's VlanConfig into two lookup tables.

- ``ingress``: wire VID (UNTAGGED for untagged or priority-tagged frames) -> the VLAN the frame belongs to
  inside the switch. A VID missing from the table is not admitted on that port.
- ``egress``: VLAN inside the switch -> the VID to put on the wire (UNTAGGED = send untagged). A VLAN missing
  from the table is not delivered to that port.

VLAN 0 inside the switch is the untagged domain of Untagged ports. Private VLANs: frames from isolated and
community ports travel on their *secondary* VLAN, frames from promiscuous ports on the *primary*; each port's
egress table then encodes who may hear whom (isolated hears only the primary, community its own secondary
and the primary, promiscuous the primary and its secondaries), and trunks carry the secondaries tagged, as
on a physical PVLAN trunk. MAC learning is shared across a primary and its secondaries (``learning_domains``),
so a promiscuous router's reply finds the isolated host that asked.

An uplink left Untagged carries every VLAN: tagged frames keep their VLAN, untagged ones are VLAN 0 — the
external port of a Hyper-V switch is a trunk for the VMs' VLANs.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyvswitch.config.schema import PortConfig, PortKind, VlanConfig, VlanMode
from pyvswitch.packet.frame import UNTAGGED

ALL_VIDS = range(1, 4095)
# Virtual subnets (HNV, issue 13) are domains inside the switch like VLANs, keyed above any 12-bit VID so that no
# VLAN of any port (an uplink carries all 4094) can reach them: a VM port on VSID v is untagged in domain
# VSID_DOMAIN + v, and only the switch's tunnel port carries that domain besides the subnet's local ports.
VSID_DOMAIN = 1 << 24


@dataclass(frozen=True, slots=True)
class VlanPolicy:
    ingress: dict[int, int]
    egress: dict[int, int]


def compile_vlan(vlan: VlanConfig, kind: PortKind) -> VlanPolicy:
    """Translate one port's VLAN settings into its ingress and egress tables."""
    mode = vlan.mode
    if mode is VlanMode.UNTAGGED:
        if kind is PortKind.UPLINK:
            return VlanPolicy(
                {UNTAGGED: 0, **{v: v for v in ALL_VIDS}}, {0: UNTAGGED, **{v: v for v in ALL_VIDS}}
            )
        return VlanPolicy({UNTAGGED: 0}, {0: UNTAGGED})
    if mode is VlanMode.ACCESS:
        assert vlan.access_vlan_id is not None
        v = vlan.access_vlan_id
        return VlanPolicy({UNTAGGED: v}, {v: UNTAGGED})
    if mode is VlanMode.TRUNK:
        native = vlan.native_vlan_id or 0
        ingress = {UNTAGGED: native, **{v: v for v in vlan.allowed_vlan_ids}}
        egress = {v: v for v in vlan.allowed_vlan_ids}
        egress[native] = UNTAGGED
        return VlanPolicy(ingress, egress)
    assert vlan.primary_vlan_id is not None
    primary = vlan.primary_vlan_id
    if mode is VlanMode.ISOLATED:
        assert vlan.secondary_vlan_id is not None
        return VlanPolicy({UNTAGGED: vlan.secondary_vlan_id}, {primary: UNTAGGED})
    if mode is VlanMode.COMMUNITY:
        assert vlan.secondary_vlan_id is not None
        s = vlan.secondary_vlan_id
        return VlanPolicy({UNTAGGED: s}, {primary: UNTAGGED, s: UNTAGGED})
    # Promiscuous
    return VlanPolicy(
        {UNTAGGED: primary}, {primary: UNTAGGED, **{s: UNTAGGED for s in vlan.secondary_vlan_ids}}
    )


def vsid_domain(vsid: int) -> int:
    return VSID_DOMAIN + vsid


def tunnel_codes(ports: list[PortConfig]) -> dict[int, int]:
    """VSID -> the code (1..4094) its frames carry between the switch and its tunnel port's device: the VSIDs of
    the switch's VM ports in order. Private to that port (datapath/tunnel.py), never on a wire."""
    vsids = sorted({p.virtual_subnet_id for p in ports if p.kind is PortKind.VM and p.virtual_subnet_id})
    if len(vsids) > 4094:
        raise ValueError(f"{len(vsids)} virtual subnets on one switch: at most 4094")
    return {v: i + 1 for i, v in enumerate(vsids)}


def compile_port_vlan(port: PortConfig, codes: dict[int, int]) -> VlanPolicy:
    """A port's tables: a VM port on a virtual subnet is untagged in that subnet's domain (its VLAN settings do
    not apply), the tunnel port carries every subnet's domain as its code, any other port its VLAN settings."""
    if port.kind is PortKind.TUNNEL:
        return VlanPolicy(
            {c: vsid_domain(v) for v, c in codes.items()}, {vsid_domain(v): c for v, c in codes.items()}
        )
    if port.kind is PortKind.VM and port.virtual_subnet_id:
        d = vsid_domain(port.virtual_subnet_id)
        return VlanPolicy({UNTAGGED: d}, {d: UNTAGGED})
    return compile_vlan(port.vlan, port.kind)


def learning_domains(ports: list[PortConfig]) -> dict[int, int]:
    """VLAN -> learning domain (filtering id) for the PVLAN secondaries configured on a switch's ports."""
    fid: dict[int, int] = {}
    for port in ports:
        v = port.vlan
        if v.mode in (VlanMode.ISOLATED, VlanMode.COMMUNITY) and v.secondary_vlan_id and v.primary_vlan_id:
            fid[v.secondary_vlan_id] = v.primary_vlan_id
        elif v.mode is VlanMode.PROMISCUOUS and v.primary_vlan_id:
            for s in v.secondary_vlan_ids:
                fid[s] = v.primary_vlan_id
    return fid
