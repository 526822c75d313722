"""The plan: a port's chain compiled from the switch's configuration (pipeline/chain.py).

Called whenever what a chain depends on changes (ports, their policies, the extension stack, mirroring, the NIC
switch's deliveries), never per packet. The order is Hyper-V's (hyperv-networking.md §1.9): ingress checks,
the port's outbound ACL, the extensions' ingress, port security's guards, forwarding (the forwarding extension
or the learning forwarder), the storm limit, the extensions' injections; then fan-out, the NIC switch's
deliveries, the trusted priority, the destinations' inbound ACLs, the extensions' egress, and mirroring.
A step a port does not need is not in its chain.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import partial
from typing import Protocol

from pyvswitch.clock import Clock
from pyvswitch.ext.stack import ExtensionStack
from pyvswitch.packet.frame import Packet
from pyvswitch.pipeline.chain import Chain, EgressStep, Step
from pyvswitch.switch.elements.fanout import (
    ExtensionEgress,
    FanOut,
    InboundAcls,
    KeepPriority,
    Mirror,
    NicSwitched,
)
from pyvswitch.switch.elements.forward import Forward, forward_with
from pyvswitch.switch.elements.ingress import Ingress
from pyvswitch.switch.elements.injection import Injections
from pyvswitch.switch.fdb import MacTable
from pyvswitch.switch.flowcache import FlowCache, sends_to_acl_in
from pyvswitch.switch.port import SwitchPort
from pyvswitch.switch.security import DhcpGuard, RouterGuard


class SwitchState(Protocol):
    """What a plan reads of its switch (switch/switch.py's Switch)."""

    ingress: Ingress
    forward: Forward
    fdb: MacTable
    fid: dict[int, int]
    clock: Clock
    flow_cache: bool
    ext_active: ExtensionStack | None
    index_of: dict[str, int]
    egress_drops: Counter[str]
    egress_counts: Counter[str]
    nic_switched: dict[str, frozenset[str]]
    acl_in_ports: set[int]
    mirror_from: set[int]
    mirror_to: list[int]

    @property
    def ports(self) -> Sequence[SwitchPort | None]: ...

    def dst_names(self, pkt: Packet) -> str: ...


def compile_chain(sw: SwitchState, port: SwitchPort) -> Chain:
    steps: list[Step] = [sw.ingress.step(port)]
    sec = port.security
    ext = sw.ext_active
    if port.acl_out is not None:
        # The port's Outbound entries, before anything else sees the frame (§1.9 step 4).
        steps.append(Step(port.acl_out.process, f"port ACL outbound ({port.name})", counts=(port.acl_out,)))
    if ext is not None:
        names = ", ".join(s.name for s in ext.captures + ext.ingress_filters)
        steps.append(Step(partial(ext.ingress, port=port.index), f"extensions ingress ({names})"))
    if sec is not None and sec.before:
        # After the extensions' ingress, as Hyper-V orders its built-in ingress policies.
        steps.append(Step(sec.before_forward, "port security", counts=sec.before))
    if ext is None:
        forward = sw.forward.process
        steps.append(Step(forward, "forward (learning switch)", detail=sw.dst_names, counts=(sw.forward,)))
    else:
        forward = partial(forward_with, ext, sw.forward, len(sw.ports))
        where = ext.forwarder.name if ext.forwarder is not None else "learning switch"
        counts = (sw.forward,) if ext.forwarder is None else ()
        steps.append(Step(forward, f"forward ({where})", detail=sw.dst_names, counts=counts))
    if sec is not None and sec.after:
        steps.append(Step(sec.after_forward, "storm limit"))
    if ext is not None:
        # Not about the frames received: a trace of one of them neither runs nor records it.
        inject = Injections(ext, forward, sw.ports, sw.egress_drops)
        steps.append(Step(inject, "extension injections", always=True, traced=False))
    egress: list[EgressStep] = []
    served = sw.nic_switched.get(port.name)
    if served:
        egress.append(NicSwitched([sw.index_of[n] for n in served if n in sw.index_of], sw.egress_counts))
    if sec is not None and sec.keep_priority:
        egress.append(KeepPriority(port, sw.ports))
    if sw.acl_in_ports:
        egress.append(InboundAcls(sw.acl_in_ports, sw.ports))
    if ext is not None:
        egress.append(ExtensionEgress(ext))
    if sw.mirror_to:
        egress.append(Mirror(port.index, sw.mirror_from, sw.mirror_to))
    return Chain(tuple(steps), FanOut(sw.ports, sw.egress_drops), tuple(egress))


def compile_flow_cache(sw: SwitchState, port: SwitchPort, chain: Chain) -> FlowCache | None:
    """The port's flow cache (switch/flowcache.py), or None when its chain holds per-packet state a replay
    cannot reproduce: a storm limit's token bucket, an ACL meter (its own or a destination's), an extension
    that is not flow-cacheable (any capture extension)."""
    if not sw.flow_cache:
        return None
    sec = port.security
    ext = sw.ext_active
    if sec is not None and sec.after:
        return None
    acls = [port.acl_out] + [p.acl_in for i in sw.acl_in_ports if (p := sw.ports[i]) is not None]
    if any(a is not None and a.table.meters for a in acls):
        return None
    if ext is not None and not ext.flow_cacheable:
        return None
    l4 = (
        port.acl_out is not None
        or bool(sw.acl_in_ports)
        or ext is not None
        or (sec is not None and any(isinstance(e, DhcpGuard | RouterGuard) for e in sec.before))
    )
    counts = tuple(e for step in chain.steps for e in step.counts)
    pending = (lambda: bool(ext.pending)) if ext is not None else (lambda: False)
    return FlowCache(
        chain,
        port,
        sw,
        sw.clock.now,
        l4=l4,
        counts=counts,
        sends_to=sends_to_acl_in(sw.ports),
        pending=pending,
    )
