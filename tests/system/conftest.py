"""System-test fixtures: a real pyvswitchd on a private socket and state dir, driven through the real CLI."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from rich.console import Console

from pyvswitch.cli.client import ApiError, Client
from pyvswitch.lab.harness import answers
from pyvswitch.lab.hosts import Lab
from pyvswitch.testing.netns import unique, wait_for

BIN = Path(sys.executable).parent


class Host:
    """One pyvswitchd instance (a 'host'), its CLI, and everything it created — removed at teardown."""

    def __init__(self, state_dir: Path, *daemon_args: str, env: dict[str, str] | None = None) -> None:
        self.daemon_args = daemon_args
        self.env = {**os.environ, **env} if env else None
        self.state_dir = state_dir
        self.socket = state_dir / "pyvswitchd.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = state_dir / "pyvswitchd.log"
        self.vms: list[str] = []

    def vm_add(self, switch: str, ip: str, *extra: str) -> str:
        """Create a VM with one adapter on ``switch``; returns its name (= its namespace)."""
        name = unique("pvs")
        self.vms.append(name)
        self.cli("vm", "add", name, "--switch", switch, "--ip", ip, *extra)
        return name

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(BIN / "pyvswitchd"),
                    "--state-dir",
                    str(self.state_dir),
                    "--socket",
                    str(self.socket),
                    *self.daemon_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        # A liveness bound, not a speed check: under the parallel suite's heaviest tests (QEMU under TCG, 3-host
        # labs) a start that re-provisions a crashed daemon's VMs took 25 s on 2026-12-06.
        wait_for(self._healthy, timeout_s=60, what=f"pyvswitchd on {self.socket} (log: {self.log})")

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"pyvswitchd exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}"
            )
        return answers(self.socket)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self) -> None:
        """SIGTERM, as systemd's restart sends: pyvswitchd exits, its forwarder keeps forwarding."""
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # SIGINT stops the forwarder too; SIGTERM would leave it forwarding for a successor (--restart-grace).
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [str(BIN / "pyvswitch"), "--socket", str(self.socket), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and res.returncode != 0:
            raise AssertionError(
                f"pyvswitch {' '.join(args)} -> {res.returncode}\n{res.stdout}\n{res.stderr}"
            )
        return res

    def json(self, *args: str) -> object:
        return json.loads(self.cli("--json", *args).stdout)

    def netns_of(self, vm: str) -> str:
        data = self.json("vm", "show", vm)
        assert isinstance(data, dict)
        return str(data["netns"])


@pytest.fixture
def host(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Host]:
    """A running pyvswitchd; ``@pytest.mark.daemon_args(...)`` adds command-line options."""
    marker = request.node.get_closest_marker("daemon_args")
    with running_host(Host(tmp_path, *(marker.args if marker else ()))) as h:
        yield h


@contextlib.contextmanager
def running_host(h: Host) -> Iterator[Host]:
    """Start ``h``; at the end remove everything it created and stop it, even after a failure."""
    h.start()
    try:
        yield h
    finally:
        try:
            if h.proc is not None and h.proc.poll() is not None:
                h.start()  # died or was killed by the test: bring it back so it removes what it created
            if h.proc is not None and h.proc.poll() is None:
                # In process (a CLI process per call cost ~0.1 s of CPU each, at every test's end).
                with Client(str(h.socket)) as api:
                    for vm in api.vms():
                        with contextlib.suppress(ApiError):
                            api.delete_vm(vm["name"])
                    for sw in api.switches():
                        with contextlib.suppress(ApiError):
                            api.delete_switch(sw["name"])
        finally:
            h.stop()
            # Whatever the daemon could not remove (a test killed it, or a step failed).
            for ns in h.vms:
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture
def two_hosts() -> Iterator[Lab]:
    """A lab of two hosts (``lab.host("hostA")`` / ``"hostB"``: pyvswitchd each in its own namespace, an
    External switch ``ext`` on its uplink into one LAN bridge, ``.cli(...)``/``.json(...)``/``.vm_add(...)``),
    and a LAN host at ``lab.lan_host_ip`` in ``lab.lan_host_netns``. A unique lab name, so parallel runs do not
    collide; VM names are global namespace names, so make them unique too (``unique("vm")``). Always torn
    down, VMs included, also when a test killed a daemon."""
    with Lab.running(hosts=2, name=unique("lab")) as lab:
        yield lab


def scene_console() -> tuple[Console, io.StringIO]:
    """A console for a demo scene whose output a test reads back (wide, no colour)."""
    out = io.StringIO()
    return Console(file=out, width=200, color_system=None), out


def echoing_cli(host: Host, console: Console) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``host.cli`` as the demo's Demo.cli: it prints each command and what the command printed."""

    def cli(*args: str, show: bool = True, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = host.cli(*args, check=check)
        if show:
            console.print(f"$ pyvswitch {shlex.join(args)}", highlight=False)
            console.print(res.stdout.rstrip(), markup=False, highlight=False)
        return res

    return cli


class Scene(Protocol):
    def run(self) -> list[Any]: ...
    def table(self, checks: list[Any]) -> bool: ...
    def cleanup(self) -> None: ...


def run_scene(scene: Scene, out: io.StringIO) -> tuple[list[Any], bool, str]:
    """Run a demo scene as the demo does (its checks, their table, its clean-up even after a failure); returns
    the checks, whether the table said all passed, and what the scene printed."""
    try:
        checks = scene.run()
        good = scene.table(checks)
    finally:
        scene.cleanup()
    return checks, good, out.getvalue()


def ping(
    netns: str, dst: str, size: int = 56, count: int = 3, timeout_s: int = 2
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            netns,
            "ping",
            "-c",
            str(count),
            "-s",
            str(size),
            "-i",
            "0.2",
            "-W",
            str(timeout_s),
            dst,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def ns_python(netns: str, code: str, timeout_s: float = 60) -> str:
    """Run Python ``code`` (with scapy available) inside ``netns``; returns stdout."""
    res = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if res.returncode != 0:
        raise AssertionError(f"python in {netns} failed: {res.stderr[-3000:]}")
    return res.stdout


SNIFF_AND_SEND = """
import json, time
from scapy.all import AsyncSniffer, Ether, Dot1Q, ARP, sendp, conf
conf.verb = 0
iface = {iface!r}
sniffer = AsyncSniffer(iface=iface, store=True)
sniffer.start()
time.sleep(0.3)  # AsyncSniffer has no 'ready' signal; it must be listening before we send
for vid in {vids!r}:
    f = Ether(dst="ff:ff:ff:ff:ff:ff", src={src!r})
    if vid:
        f = f / Dot1Q(vlan=vid)
    sendp(f / ARP(op=1, hwsrc={src!r}, psrc={psrc!r}, pdst={pdst!r}), iface=iface)
time.sleep({wait})
pkts = sniffer.stop()
out = []
for p in pkts:
    if p.haslayer(ARP) and p[ARP].op == 2:
        out.append({{"vlan": p[Dot1Q].vlan if p.haslayer(Dot1Q) else None, "psrc": p[ARP].psrc, "dst": p.dst}})
print(json.dumps(out))
"""


SEND_RAW = """
from scapy.all import Ether, Dot1Q, IP, UDP, sendp, conf
conf.verb = 0
sendp({frames}, iface={iface!r})
"""


# A third-party extension package (tests/fixtures/pyvswitch_ext_sample), built once a module, and a daemon that
# finds it through its PYTHONPATH only, so the project's venv is left as it was.
PACKAGE = Path(__file__).resolve().parents[1] / "fixtures" / "pyvswitch_ext_sample"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("extsite")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
         str(target), str(PACKAGE)],
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    return target


@pytest.fixture
def ext_host(site: Path, tmp_path: Path) -> Iterator[Host]:
    with running_host(Host(tmp_path, env={"PYTHONPATH": str(site)})) as h:
        yield h
