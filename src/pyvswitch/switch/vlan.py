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
