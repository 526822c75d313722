"""A port as the data path sees it: its device and its compiled policy (what the chain's steps are bound to)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pyvswitch.config.schema import PortKind
from pyvswitch.datapath.device import Device
from pyvswitch.pipeline.chain import Chain
from pyvswitch.switch.flowcache import FlowCache
from pyvswitch.switch.portacl import PortAcl
from pyvswitch.switch.qos import EgressQos, HostPolicy, Pacer
from pyvswitch.switch.security import Learn, PortSecurity


@dataclass(slots=True)
class SwitchPort:
    """A port as the data path sees it: its device and compiled policy."""

    index: int
    name: str
    kind: PortKind
    device: Device
    ingress_vlans: dict[int, int]
    egress_vlans: dict[int, int]
    max_frame: int
    mac: int | None = None
    drops: Counter[str] = field(default_factory=Counter)
    # Port security (switch/security.py): None when the port has no policy, so such a port pays nothing.
    security: PortSecurity | None = None
    # How ingress learns this port's sources when not simply into the MAC table (a MAC-guarded port).
    learn: Learn | None = None
    # Port ACLs (switch/portacl.py), None per direction without entries.
    acl_out: PortAcl | None = None
    acl_in: PortAcl | None = None
    # QoS (switch/qos.py), set by the engine: the egress scheduler of a port with a line rate, the pacer of a
    # port with a MaximumBandwidth, the host policies of a management-OS port. None = nothing to pay.
    egress: EgressQos | None = None
    pacer: Pacer | None = None
    host_policy: HostPolicy | None = None
    # Its compiled chain (switch/plan.py), set by the switch after every reconfiguration, and the flow cache in
    # front of it (switch/flowcache.py), None where the chain cannot be cached.
    chain: Chain | None = None
    flows: FlowCache | None = None
    # Frames it may still receive before the switch's sampler must look (switch/sampling.py); 0: the next batch.
    sample_left: int = 0
