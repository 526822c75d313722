"""The emulated SR-IOV NIC switch: tc programs that move a VF port's frames in the kernel, and the socket filters
that keep pyvswitch from forwarding them a second time.

A "VF" here is the kernel doing a VM's switching. The VM keeps its one veth interface; the uplink's NIC switch is
a set of u32 filters with mirred actions on clsact ingress hooks:

* uplink ingress: unicast to a VF MAC -> redirect to that VF port's interface egress (the VM receives it);
  group-addressed -> mirror to every VF port's interface, then continue (pyvswitch floods it to software ports);
* VF port ingress (from the VM): to another VF of the uplink -> redirect there (hairpin); to a software port's
  MAC -> classified with no action, continue (pyvswitch switches it); group-addressed -> mirror to the uplink and
  continue; from the VF's own MAC otherwise -> redirect to the uplink. Any other source MAC is not matched and
  reaches pyvswitch, whose MAC spoofing guard drops and counts it: the NIC switch's spoof check, with the policy
  staying in the host.

AF_PACKET taps see a frame before tc ingress, so classic BPF socket filters on pyvswitch's receive sockets drop
what tc owns: the uplink's socket ignores unicast to VF MACs, a VF port's socket accepts only group-addressed
frames, frames to software MACs and frames with a foreign source MAC.

Why /sbin/tc and not pyroute2: pyroute2's u32 selector (``cls_u32.py``) packs keys into a 256-byte header array
indexed by offset, so a negative offset (the MAC header sits at -14 from the network header at tc ingress)
indexes the array from its end and is encoded as a wrong positive offset; MAC fields cannot be matched with it.
tc's own ``match ... at -14`` packs negative offsets correctly. Programming happens on the management path only
(a few processes per transition), never per frame.
"""

from __future__ import annotations

import socket
import struct
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pyvswitch.errors import DeviceError

SO_ATTACH_FILTER = 26
SO_DETACH_FILTER = 27
TC = "/usr/sbin/tc"

# Classic BPF opcodes (linux/filter.h)
BPF_LD_W_ABS = 0x20
BPF_LD_H_ABS = 0x28
BPF_LD_B_ABS = 0x30
BPF_JEQ_K = 0x15
BPF_JSET_K = 0x45
BPF_RET_K = 0x06
ACCEPT = 0xFFFFFFFF
REJECT = 0

Insn = tuple[int, int, int, int]  # code, jt, jf, k
SOCK_FILTER = struct.Struct("HBBI")


def mac_bytes(mac: str) -> bytes:
    raw = bytes(int(x, 16) for x in mac.replace("-", ":").split(":"))
    if len(raw) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    return raw


def _mac_words(mac: str) -> tuple[int, int]:
    raw = mac_bytes(mac)
    return struct.unpack("!I", raw[:4])[0], struct.unpack("!H", raw[4:])[0]


# ---- classic BPF socket filters ----


@dataclass
class _Prog:
    """A tiny assembler: jumps name labels, resolved to relative offsets at the end."""

    insns: list[tuple[int, str | int, str | int, int]] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)

    def op(self, code: int, k: int, jt: str | int = 0, jf: str | int = 0) -> None:
        self.insns.append((code, jt, jf, k))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.insns)

    def build(self) -> list[Insn]:
        out: list[Insn] = []
        for i, (code, jt, jf, k) in enumerate(self.insns):
            out.append((code, self._rel(i, jt), self._rel(i, jf), k))
        return out

    def _rel(self, i: int, target: str | int) -> int:
        if isinstance(target, int):
            return target
        off = self.labels[target] - i - 1
        if not 0 <= off <= 255:
            raise ValueError("socket filter too long for a conditional jump")
        return off


def _match_mac(p: _Prog, at: int, mac: str, on_match: str, name: str) -> None:
    """Jump to on_match if the 6 bytes at ``at`` are ``mac``; fall through otherwise."""
    hi, lo = _mac_words(mac)
    p.op(BPF_LD_W_ABS, at)
    p.op(BPF_JEQ_K, hi, 0, name)
    p.op(BPF_LD_H_ABS, at + 4)
    p.op(BPF_JEQ_K, lo, on_match, name)
    p.label(name)


def uplink_filter(vf_macs: Iterable[str]) -> list[Insn]:
    """The uplink's receive socket: everything except unicast to a VF (the NIC switch delivered it)."""
    p = _Prog()
    for n, mac in enumerate(sorted(set(vf_macs))):
        _match_mac(p, 0, mac, "reject", f"u{n}")
    p.op(BPF_RET_K, ACCEPT)
    p.label("reject")
    p.op(BPF_RET_K, REJECT)
    return p.build()


def vf_port_filter(vf_mac: str, software_macs: Iterable[str]) -> list[Insn]:
    """A VF port's receive socket: what tc lets through to the stack, i.e. group-addressed frames, frames to a
    software port, and frames with a source MAC not the VF's (pyvswitch's spoofing guard drops those)."""
    p = _Prog()
    p.op(BPF_LD_B_ABS, 0)
    p.op(BPF_JSET_K, 0x01, "accept", 0)
    for n, mac in enumerate(sorted(set(software_macs))):
        _match_mac(p, 0, mac, "accept", f"s{n}")
    hi, lo = _mac_words(vf_mac)
    p.op(BPF_LD_W_ABS, 6)
    p.op(BPF_JEQ_K, hi, 0, "accept")
    p.op(BPF_LD_H_ABS, 10)
    p.op(BPF_JEQ_K, lo, "reject", "accept")
    p.label("accept")
    p.op(BPF_RET_K, ACCEPT)
    p.label("reject")
    p.op(BPF_RET_K, REJECT)
    return p.build()


def run_filter(prog: Sequence[Insn], frame: bytes) -> int:
    """Interpret the subset of classic BPF the programs above use (tests, what-if)."""
    a = 0
    pc = 0
    while pc < len(prog):
        code, jt, jf, k = prog[pc]
        pc += 1
        if code in (BPF_LD_W_ABS, BPF_LD_H_ABS, BPF_LD_B_ABS):
            size = {BPF_LD_W_ABS: 4, BPF_LD_H_ABS: 2, BPF_LD_B_ABS: 1}[code]
            if k + size > len(frame):
                return 0  # the kernel aborts the program: frame dropped
            a = int.from_bytes(frame[k : k + size], "big")
        elif code == BPF_JEQ_K:
            pc += jt if a == k else jf
        elif code == BPF_JSET_K:
            pc += jt if a & k else jf
        elif code == BPF_RET_K:
            return k
        else:
            raise ValueError(f"opcode {code:#x} not interpreted")
    return 0


def attach_filter(fd: int, prog: Sequence[Insn] | None) -> None:
    """Attach (or with None detach) a classic BPF program to the socket ``fd`` (not taking ownership of it).

    SO_ATTACH_FILTER replaces the old program atomically, so there is no instant without a filter."""
    sock = socket.socket(fileno=fd)
    try:
        if prog is None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
            except OSError:
                pass  # no filter attached
            return
        import ctypes

        code = b"".join(SOCK_FILTER.pack(*insn) for insn in prog)
        buf = ctypes.create_string_buffer(code, len(code))
        fprog = struct.pack("HL", len(prog), ctypes.addressof(buf))
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    finally:
        sock.detach()


# ---- tc programs ----


@dataclass(frozen=True, slots=True)
class VfPort:
    """One VF: the MAC the VM owns and the host-side interface of its port."""

    mac: str
    interface: str


@dataclass(frozen=True, slots=True)
class NicSwitchPlan:
    """What one uplink's NIC switch does: its VFs and the MACs of the switch's software ports."""

    uplink: str
    vfs: tuple[VfPort, ...] = ()
    software_macs: tuple[str, ...] = ()


def _dst(mac: str) -> list[str]:
    # tc's u32 keys must be aligned to their size: the destination is 2 + 4 bytes, the source 4 + 2.
    raw = mac_bytes(mac)
    hi = struct.unpack("!H", raw[:2])[0]
    lo = struct.unpack("!I", raw[2:])[0]
    return [
        "match",
        "u16",
        f"{hi:#06x}",
        "0xffff",
        "at",
        "-14",
        "match",
        "u32",
        f"{lo:#010x}",
        "0xffffffff",
        "at",
        "-12",
    ]


def _src(mac: str) -> list[str]:
    hi, lo = _mac_words(mac)
    return [
        "match",
        "u32",
        f"{hi:#010x}",
        "0xffffffff",
        "at",
        "-8",
        "match",
        "u16",
        f"{lo:#06x}",
        "0xffff",
        "at",
        "-4",
    ]


GROUP = ["match", "u8", "0x01", "0x01", "at", "-14"]


def _filter(dev: str, prio: int, matches: list[str], actions: list[str]) -> list[str]:
    head = [TC, "filter", "add", "dev", dev, "ingress", "prio", str(prio), "protocol", "all", "u32"]
    return head + matches + (actions or ["classid", "1:1"])


def tc_commands(plan: NicSwitchPlan) -> dict[str, list[list[str]]]:
    """The tc filter commands per interface (after the qdisc add), in priority order."""
    out: dict[str, list[list[str]]] = {}
    up: list[list[str]] = []
    for n, vf in enumerate(plan.vfs):
        up.append(
            _filter(
                plan.uplink,
                10 + n,
                _dst(vf.mac),
                ["action", "mirred", "egress", "redirect", "dev", vf.interface],
            )
        )
    if plan.vfs:
        mirrors: list[str] = []
        for vf in plan.vfs:
            mirrors += ["action", "mirred", "egress", "mirror", "dev", vf.interface]
        up.append(_filter(plan.uplink, 1000, GROUP, mirrors))
    out[plan.uplink] = up
    for vf in plan.vfs:
        cmds: list[list[str]] = []
        prio = 10
        for other in plan.vfs:
            if other is not vf:
                cmds.append(
                    _filter(
                        vf.interface,
                        prio,
                        _dst(other.mac),
                        ["action", "mirred", "egress", "redirect", "dev", other.interface],
                    )
                )
                prio += 1
        for mac in plan.software_macs:
            cmds.append(_filter(vf.interface, prio, _dst(mac), []))
            prio += 1
        cmds.append(
            _filter(vf.interface, 1000, GROUP, ["action", "mirred", "egress", "mirror", "dev", plan.uplink])
        )
        cmds.append(
            _filter(
                vf.interface,
                1001,
                _src(vf.mac),
                ["action", "mirred", "egress", "redirect", "dev", plan.uplink],
            )
        )
        out[vf.interface] = cmds
    return out


def _run(cmd: list[str], check: bool = True) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and res.returncode != 0:
        raise DeviceError(f"{' '.join(cmd)}: {res.stderr.strip()}")


class TcNicSwitch:
    """Programs NIC-switch plans into the kernel; one instance per daemon (it keeps what it programmed).

    Make before break: a device's new filters go in at the other of two priority bands, then the old band's
    filters are deleted one by one, so while it changes every frame still matches either the old or the new
    program (clearing first would hand VF frames to a socket filter that ignores them)."""

    BAND = 10000

    def __init__(self, netns: str | None = None) -> None:
        self._prefix = ["ip", "netns", "exec", netns] if netns else []
        self._prios: dict[str, tuple[int, list[int]]] = {}  # device -> (band, priorities in use)

    def program(self, plan: NicSwitchPlan) -> None:
        """Replace the filters of the uplink and of each VF port with ``plan``'s."""
        for dev, cmds in tc_commands(plan).items():
            old = self._prios.get(dev)
            band = 1 - old[0] if old is not None else 0
            if old is None:
                self.clear(dev)  # whatever an earlier run left
                _run([*self._prefix, TC, "qdisc", "add", "dev", dev, "clsact"], check=False)
            prios = []
            for cmd in cmds:
                at = cmd.index("prio") + 1
                prio = int(cmd[at]) + band * self.BAND
                prios.append(prio)
                _run([*self._prefix, *cmd[:at], str(prio), *cmd[at + 1 :]])
            if old is not None:
                for prio in old[1]:
                    _run(
                        [*self._prefix, TC, "filter", "del", "dev", dev, "ingress", "prio", str(prio)],
                        check=False,
                    )
            self._prios[dev] = (band, prios)

    def clear(self, dev: str) -> None:
        """Remove every ingress filter of ``dev`` (the clsact qdisc stays: cheap and idempotent)."""
        _run([*self._prefix, TC, "filter", "del", "dev", dev, "ingress"], check=False)
        self._prios.pop(dev, None)

    @property
    def programmed(self) -> frozenset[str]:
        return frozenset(self._prios)
