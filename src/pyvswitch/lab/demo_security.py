"""The demo's security scene: port security, the stateful firewall and a what-if trace, on the demo's VMs.

1. web02 turns rogue DHCP server: with DHCP guard on, its OFFER is dropped ("dhcp-guard").
2. db02 sends with web01's MAC: the MAC spoofing guard (on by default, as in Hyper-V) drops it ("mac-spoofing").
3. web01 gets a stateful firewall policy (deny all inbound; allow outbound HTTP, stateful): its requests to
   web02's web server get their replies, while a new connection from web02 to web01 is refused.
4. A what-if trace of that refused connection shows where and why it dies, without sending anything.

Frames for 1 and 2 are built here with struct and sent from inside the VM through an AF_PACKET socket, as a
misbehaving guest would.
"""

from __future__ import annotations

import contextlib
import re
import struct
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from pyvswitch.packet.checksum import internet_checksum
from pyvswitch.packet.mac import parse_mac
from pyvswitch.testing.netns import sh, wait_for

SEND = (
    "import socket,sys; s=socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('eth0', 0)); "
    "[s.send(bytes.fromhex(sys.argv[1])) for _ in range(int(sys.argv[2]))]"
)
CONNECT = (
    "import socket,sys; s=socket.socket(); s.settimeout(2)\n"
    "try:\n s.connect((sys.argv[1], int(sys.argv[2]))); s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n');"
    " print('ok' if s.recv(16).startswith(b'HTTP') else 'bad')\n"
    "except OSError as e:\n print('refused', e)"
)


def dhcp_offer(src_mac: str, server_ip: str) -> bytes:
    """A broadcast DHCPOFFER (BOOTP op 2 from UDP port 67), as a rogue DHCP server sends it."""
    mac = parse_mac(src_mac).to_bytes(6, "big")
    bootp = struct.pack(">BBBBIHH4s4s4s4s16s64s128s", 2, 1, 6, 0, 0x1234, 0, 0, bytes(4),
                        bytes([10, 10, 0, 99]), bytes(4), bytes(4), bytes(16), bytes(64), bytes(128))  # fmt: skip
    bootp += bytes([99, 130, 83, 99, 53, 1, 2, 255])  # magic cookie, message type OFFER
    udp = struct.pack(">HHHH", 67, 68, 8 + len(bootp), 0) + bootp
    sip = bytes(int(x) for x in server_ip.split("."))
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, sip, b"\xff" * 4)
    ip = ip[:10] + struct.pack(">H", internet_checksum(ip)) + ip[12:]
    return b"\xff" * 6 + mac + b"\x08\x00" + ip + udp


def spoofed(as_mac: str) -> bytes:
    """A broadcast frame claiming another VM's MAC as its source."""
    return b"\xff" * 6 + parse_mac(as_mac).to_bytes(6, "big") + b"\x88\xb5" + b"spoofed".ljust(46, b"\0")


@dataclass
class SecurityCheck:
    what: str
    expected: str
    ok: bool
    evidence: str


class SecurityScene:
    """Runs against a built Demo: ``cli``, ``cli_json``, ``netns`` (VM short name -> namespace), ``vm_names``."""

    def __init__(self, console: Console, cli: Callable[..., Any], cli_json: Callable[..., Any],
                 netns: dict[str, str], vm_names: dict[str, str]) -> None:  # fmt: skip
        self.console = console
        self.cli = cli
        self.cli_json = cli_json
        self.netns = netns
        self.vm_names = vm_names

    def port(self, vm: str) -> str:
        return f"{self.vm_names[vm]}-eth0"

    def mac(self, vm: str) -> str:
        return str(self.cli_json("vm", "show", self.vm_names[vm])["ports"][0]["mac"])

    def drops(self, where_prefix: str, reason: str) -> int:
        rows = self.cli_json("show", "drops")
        return sum(
            int(r["count"])
            for r in rows
            if str(r["where"]).startswith(where_prefix) and r["reason"] == reason
        )

    def send(self, vm: str, frame: bytes, count: int = 3) -> None:
        sh("python3", "-c", SEND, frame.hex(), str(count), netns=self.netns[vm])

    @contextlib.contextmanager
    def http_server(self, vm: str, port: int) -> Iterator[None]:
        ns = self.netns[vm]
        p = subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-m", "http.server", str(port)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            wait_for(lambda: f":{port}" in sh("ss", "-ltn", netns=ns), what=f"web server in {vm}")
            yield
        finally:
            p.kill()
            p.wait()

    def connect(self, vm: str, ip: str, port: int) -> bool:
        return sh("python3", "-c", CONNECT, ip, str(port), netns=self.netns[vm], check=False).startswith("ok")

    def run(self, ips: dict[str, str]) -> list[SecurityCheck]:
        c = self.console
        c.rule("Security")
        checks: list[SecurityCheck] = []
        web01, web02, db02 = self.port("web01"), self.port("web02"), self.port("db02")

        self.cli("port", "set", web02, "--dhcp-guard")
        before = self.drops(web02, "dhcp-guard")
        self.send("web02", dhcp_offer(self.mac("web02"), ips["web02"]))
        n = self.drops(web02, "dhcp-guard") - before
        checks.append(
            SecurityCheck(
                "web02 rogue DHCP offer", "dropped (DHCP guard)", n == 3, f"{n} dropped: dhcp-guard"
            )
        )

        before = self.drops(db02, "mac-spoofing")
        self.send("db02", spoofed(self.mac("web01")))
        n = self.drops(db02, "mac-spoofing") - before
        checks.append(
            SecurityCheck(
                "db02 sends as web01's MAC", "dropped (spoofing guard)", n == 3, f"{n} dropped: mac-spoofing"
            )
        )

        c.print("[bold cyan]# web01: deny all inbound, allow outbound HTTP statefully[/bold cyan]")
        self.cli("port", "xacl", "add", web01, "--action", "deny", "--direction", "inbound", "--weight", "1")
        self.cli("port", "xacl", "add", web01, "--action", "allow", "--direction", "outbound", "--weight", "10",
                 "--remote-port", "80", "--protocol", "tcp", "--stateful", "--idle-timeout", "60")  # fmt: skip
        with self.http_server("web02", 80), self.http_server("web01", 8080):
            out_ok = self.connect("web01", ips["web02"], 80)
            in_ok = self.connect("web02", ips["web01"], 8080)
        checks.append(
            SecurityCheck("web01 → web02:80 (HTTP)", "replies admitted", out_ok, "ok" if out_ok else "failed")
        )
        checks.append(SecurityCheck("web02 → web01:8080 (new)", "refused (firewall)", not in_ok,
                                    "refused" if not in_ok else "connected"))  # fmt: skip

        c.print("[bold cyan]# why was it refused? a what-if trace (nothing is sent)[/bold cyan]")
        desc = [f"dst={self.mac('web01')}", "tcp", f"ip={ips['web02']}>{ips['web01']}", "dport=8080"]
        res = self.cli("trace", web02, *desc, check=False)  # exit 1: it would be dropped
        tree = res.stdout
        rule = re.search(r"extended ACL entry (Deny \w+ weight \d+ \([^)]*\))", tree)
        explained = res.returncode == 1 and "extended-acl-deny" in tree and rule is not None
        checks.append(SecurityCheck("what-if trace of it", "names the firewall rule", explained,
                                    f"dropped: {rule[1]}" if rule is not None else tree[-60:]))  # fmt: skip
        return checks

    def table(self, checks: list[SecurityCheck]) -> bool:
        t = Table(title="pyvswitch demo — security")
        for col in ("check", "expected", "observed", "verdict"):
            t.add_column(col)
        for chk in checks:
            t.add_row(chk.what, chk.expected, chk.evidence, "[green]✓[/green]" if chk.ok else "[red]✗[/red]")
        self.console.print(t)
        return all(chk.ok for chk in checks)
