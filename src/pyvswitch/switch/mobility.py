"""Mobility: what moves a VM's traffic off the switch's usual path and back. SR-IOV's emulated NIC switch
(destinations it delivered already, VF revocations extensions ask for) and live migration (rings prepared for an
arriving interface, validation ports, extensions' port state, the RARP that tells the network where the MAC went;
daemon/migration.py, hyperv-networking.md §2.4-2.5). Everything touching a switch runs between batches, through
the engine's forwarding loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from pyvswitch.config.schema import PortConfig
from pyvswitch.ext.api import PortEvent
from pyvswitch.packet.frame import UNTAGGED, Packet
from pyvswitch.switch.devices import DeviceOpener
from pyvswitch.switch.switch import Switch, port_info
from pyvswitch.switch.team_frames import rarp


class Mobility:
    """The engine's mobility half; ``switches`` returns the engine's switches as installed now."""

    def __init__(
        self,
        switches: Callable[[], dict[str, Switch]],
        run_in_loop: Callable[[Callable[[], None]], None],
        opener: DeviceOpener,
    ) -> None:
        self.switches = switches
        self.run_in_loop = run_in_loop
        self.opener = opener

    def set_nic_switched(self, switch: str, served: dict[str, frozenset[str]]) -> None:
        """Between batches: per ingress port, the destinations the NIC switch serves (Switch.nic_switched)."""
        sw = self.switches().get(switch)
        if sw is not None:
            self.run_in_loop(lambda: sw.set_nic_switched(served))

    def take_vf_requests(self) -> list[tuple[str, str, bool]]:
        """(switch, port, revoke) from extensions' Context.revoke_vf since the last call."""
        out: list[tuple[str, str, bool]] = []

        def take() -> None:
            for sw in self.switches().values():
                if sw.ext is not None:
                    out.extend((sw.name, port, revoke) for port, revoke in sw.ext.ctx.take_vf_requests())

        self.run_in_loop(take)
        return out

    def prepare_device(self, ifname: str) -> None:
        """Rings for an interface about to arrive by live migration (DeviceOpener.prepare)."""
        self.opener.prepare(ifname)

    def validate_port(self, port: PortConfig) -> None:
        """Offer ``port`` to its switch's extensions as a *validation port* (Hyper-V §2.4): they see it created
        and may veto (ExtensionVeto), then see it deleted; nothing in the data path changes or is reserved."""
        assert port.switch is not None
        sw = self.switches().get(port.switch)
        if sw is None:
            raise KeyError(f"no switch {port.switch!r} in the engine")

        def offer() -> None:
            stack = sw.ext
            if stack is None:
                return
            info = replace(port_info(sw.name, port, -1), validation=True)
            stack.deliver([(PortEvent.CREATE, info)])  # a Veto raises here, the acceptors told of the delete
            stack.abandon([info])
            sw.refresh_extensions()

        self.run_in_loop(offer)

    def save_port_state(self, switch: str, port: str) -> dict[str, bytes]:
        """Each extension's run-time state of ``port`` (save_state), by extension name, read between batches."""
        out: dict[str, bytes] = {}
        sw = self.switches().get(switch)
        if sw is None or sw.ext is None:
            return out
        stack = sw.ext
        self.run_in_loop(lambda: out.update(stack.save_port_state(port)))
        return out

    def restore_port_state(self, switch: str, port: str, blobs: dict[str, bytes]) -> list[str]:
        """Hand saved state back to the extensions of ``port`` (restore_state); the names nobody took."""
        orphans: list[str] = []
        sw = self.switches().get(switch)
        if sw is None or sw.ext is None:
            return list(blobs)
        stack = sw.ext

        def restore() -> None:
            orphans.extend(stack.restore_port_state(port, blobs))
            sw.refresh_extensions()

        self.run_in_loop(restore)
        return orphans

    def announce(self, switch: str, port: str, copies: int = 1) -> int:
        """Send a RARP from ``port``'s MAC out of every port of its VLAN behind which MACs are not configured
        (the uplink, bound interfaces, TAPs), tagged as that port's frames would leave, so the physical network
        relearns where the MAC is (a VM that arrived by live migration). Returns the frames sent."""
        sw = self.switches().get(switch)
        if sw is None or port not in sw.index_of:
            raise KeyError(f"port {port!r} is not connected to switch {switch!r}")
        idx = sw.index_of[port]
        sent: list[int] = [0]

        def send() -> None:
            src = sw.ports[idx]
            if src is None or src.mac is None:
                return
            vlan = src.ingress_vlans.get(UNTAGGED)
            if vlan is None:
                return
            frame = rarp(src.mac)
            for t in sw.unknown_targets(vlan):
                dst = sw.ports[t]
                if dst is None or t == idx:
                    continue
                for _ in range(copies):
                    dst.device.send([Packet(frame)], [dst.egress_vlans[vlan]])
                    sent[0] += 1

        self.run_in_loop(send)
        return sent[0]
