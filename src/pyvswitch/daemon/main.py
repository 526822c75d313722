"""The ``pyvswitchd`` entry point: start the engine, reconcile stored state, serve the API on a unix socket.

Foreground by default and systemd-friendly: logs go to stderr, SIGTERM/SIGINT stop it cleanly (uvicorn stops
serving, then the engine is stopped and the socket removed), and ``READY=1`` is sent to ``$NOTIFY_SOCKET``
when it is set. ``--detach`` forks into the background and returns once the daemon is ready (or failed).

Safety against two daemons: the state directory is locked with ``flock`` (released by the kernel even after
kill -9), and a socket that still accepts connections belongs to a live daemon, so we refuse to start; a
socket file nobody listens on is stale and is removed. Anything at ``--socket`` that is not a socket (a
file, a directory, a symlink) is refused, never removed; at exit only our own socket is unlinked.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import sqlite3
import stat
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pyvswitch
from pyvswitch.daemon import pidlock
from pyvswitch.daemon.systemd import Watchdog, watchdog_interval
from pyvswitch.errors import ConfigError, PyvswitchError

if TYPE_CHECKING:
    from pyvswitch.cluster.agent import ClusterAgent
    from pyvswitch.config.store import Store
    from pyvswitch.daemon.service import Service
    from pyvswitch.daemon.steering import ReceiveSteering

log = logging.getLogger(__name__)

DEFAULT_STATE_DIR = "/var/lib/pyvswitch"
DEFAULT_SOCKET = "/run/pyvswitch/pyvswitchd.sock"


class StartupError(Exception):
    """A reason not to start, said in one line for the operator."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pyvswitchd", description="pyvswitch daemon: switches, ports, VMs and REST API"
    )
    p.add_argument(
        "--state-dir", default=DEFAULT_STATE_DIR, help=f"store location (default {DEFAULT_STATE_DIR})"
    )
    p.add_argument(
        "--socket",
        default=os.environ.get("PYVSWITCH_SOCKET", DEFAULT_SOCKET),
        help=f"API unix socket (env PYVSWITCH_SOCKET, default {DEFAULT_SOCKET})",
    )
    p.add_argument(
        "--host-id", type=int, default=None, help="0-65535; picks the dynamic MAC pool 02:15:5d:XX:YY:00-ff"
    )
    p.add_argument(
        "--forwarding-cpu",
        default="auto",
        help="CPU for the forwarding thread: N, 'none', or 'auto' (the last allowed CPU when there are "
        "two or more; guests' receive processing is then steered to the others)",
    )
    p.add_argument(
        "--busy-poll",
        default="dense",
        choices=["dense", "always", "off"],
        help="when the forwarding thread polls without sleeping for 50 ms after a frame: 'dense' while traffic "
        "is at least 5,000 frames/s (default), 'always' (lowest latency for sparse traffic, a CPU per forwarder "
        "while any traffic flows), 'off'",
    )
    p.add_argument(
        "--receive-steering",
        default="auto",
        choices=["auto", "on", "off"],
        help="run guests' receive processing on the CPUs other than the forwarding CPU: 'auto' while the "
        "forwarding CPU is saturated (default), 'on' always, 'off' never",
    )
    p.add_argument(
        "--restart-grace",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="after SIGTERM or a crash, the forwarder keeps forwarding this long waiting for a new pyvswitchd "
        "(default 10; 0 stops forwarding with the daemon). SIGINT (Ctrl-C) always stops both",
    )
    p.add_argument(
        "--guest-image-cache",
        default=None,
        metavar="DIR",
        help="where QEMU guests' kernel and initramfs are built and kept (default: STATE_DIR/guest-image)",
    )
    p.add_argument(
        "--cluster",
        default=None,
        metavar="URLS",
        help="join a cluster: etcd endpoints, comma-separated (http://127.0.0.1:2379,...); virtual subnets' "
        "lookup records are then shared with the other hosts (issue 13)",
    )
    p.add_argument(
        "--provider-address",
        default=None,
        metavar="IP",
        help="with --cluster: this host's address on the provider network (where tunnels to its VMs end)",
    )
    p.add_argument(
        "--host-name",
        default=None,
        metavar="NAME",
        help="with --cluster: this host's name in the cluster (default: the system's host name)",
    )
    p.add_argument(
        "--cluster-lease-ttl",
        type=int,
        default=10,
        metavar="SECONDS",
        help="with --cluster: a host that stops renewing its registration for this long is gone, with its "
        "records (default 10)",
    )
    p.add_argument(
        "--tunnel-datapath",
        default="kernel",
        choices=["kernel", "python"],
        help="with --cluster: encapsulate VXLAN in kernel vxlan devices with static FDB entries from the lookup "
        "records (kernel, the default: GSO passes through) or in the switch process (python)",
    )
    p.add_argument(
        "--metrics-listen",
        default=None,
        metavar="ADDR:PORT",
        help="also serve Prometheus metrics (/metrics, read-only, nothing else) on this TCP address, e.g. "
        "127.0.0.1:9464; they are always on the API socket at /metrics",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--detach", action="store_true", help="run in the background; exit once ready")
    p.add_argument("--version", action="version", version=f"pyvswitchd {pyvswitch.__version__}")
    p.add_argument(
        "--install-service",
        action="store_true",
        help="write the systemd unit (Type=notify, watchdog, KillMode=process) running this pyvswitchd with "
        "/var/lib/pyvswitch and /run/pyvswitch, enable it if systemd runs the machine, and exit",
    )
    p.add_argument(
        "--install-root",
        default="/",
        metavar="DIR",
        help="with --install-service: install under DIR (packaging)",
    )
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    if args.metrics_listen is not None:
        try:
            args.metrics_addr = parse_listen(args.metrics_listen)
        except ValueError as exc:
            p.error(f"--metrics-listen: {exc}")
    if args.cluster is not None:
        try:
            from pyvswitch.cluster.client import parse_endpoints

            parse_endpoints(args.cluster)
        except ValueError as exc:
            p.error(f"--cluster: {exc}")
        if args.provider_address is None:
            p.error("--cluster needs --provider-address (this host's address on the provider network)")
        try:
            ipaddress.ip_address(args.provider_address)
        except ValueError:
            p.error(f"--provider-address: {args.provider_address!r} is not an IP address")
        if not 1 <= args.cluster_lease_ttl <= 3600:
            p.error("--cluster-lease-ttl: 1..3600 seconds")
    return args


def parse_listen(text: str) -> tuple[str, int]:
    """``ADDR:PORT`` (``[v6]:PORT`` for IPv6) -> (address, port); the address must be an IP address."""
    addr, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not ADDR:PORT (a port 1-65535)")
    addr = addr[1:-1] if addr.startswith("[") and addr.endswith("]") else addr
    try:
        ipaddress.ip_address(addr)
    except ValueError:
        raise ValueError(f"{addr!r} is not an IP address") from None
    return addr, int(port)


def _cluster_agent(args: argparse.Namespace, state_dir: Path) -> ClusterAgent:
    from pyvswitch.cluster.agent import ClusterAgent
    from pyvswitch.cluster.client import ClusterClient
    from pyvswitch.cluster.records import HostInfo

    name = args.host_name or socket.gethostname()
    host = HostInfo(name, args.provider_address)
    log.info("cluster: host %s, provider address %s, etcd %s", name, args.provider_address, args.cluster)
    return ClusterAgent(ClusterClient(args.cluster), host, state_dir, ttl_s=args.cluster_lease_ttl)


def cpu_plan(choice: str, allowed: set[int]) -> tuple[int | None, frozenset[int]]:
    """(forwarding CPU or None, CPUs for guests' receive processing) from --forwarding-cpu."""
    if choice == "none":
        return None, frozenset()
    if choice == "auto":
        if len(allowed) < 2:
            return None, frozenset()
        cpu = max(allowed)
    else:
        try:
            cpu = int(choice)
        except ValueError:
            raise StartupError(
                f"--forwarding-cpu: expected a CPU number, 'auto' or 'none', not {choice!r}"
            ) from None
        if cpu not in allowed:
            raise StartupError(
                f"--forwarding-cpu: CPU {cpu} is not one this process may use ({sorted(allowed)})"
            )
    return cpu, frozenset(allowed - {cpu})


def _machine_id() -> str:
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        with contextlib.suppress(OSError):
            return Path(path).read_text().strip()
    return socket.gethostname()


def _lock_state_dir(state_dir: Path) -> IO[str]:
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        return pidlock.hold(state_dir / "pyvswitchd.lock")
    except pidlock.Held:
        raise StartupError(f"another pyvswitchd is using state directory {state_dir}") from None


def _file_kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISREG(mode):
        return "a regular file"
    return "a special file"


def _bind_socket(path: Path) -> socket.socket:
    """A listening unix socket at ``path``, mode 0600; refuses if a live daemon answers there."""
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        # Only a socket can be stale. Anything else at the path (a mistyped --socket naming a file, a
        # directory, a symlink to either) is not ours to delete (issue 11: a regular file was removed).
        if not stat.S_ISSOCK(st.st_mode):
            raise StartupError(
                f"{path} exists and is {_file_kind(st.st_mode)}, not a socket; not removing it"
            )
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # A live daemon accepts at once; a socket whose backlog is full and never drained has nobody serving it
        # (a blocking connect would wait for as long as whatever still holds it lives).
        probe.settimeout(2.0)
        try:
            probe.connect(str(path))
        except OSError:  # refused, or timed out on a backlog nobody drains
            log.info("removing stale socket %s", path)
            path.unlink()
        else:
            raise StartupError(f"another pyvswitchd is already running on {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # no window in which the socket is reachable by others
    try:
        sock.bind(str(path))
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _unlink_own_socket(path: Path, ino: int) -> None:
    """Remove the socket we bound, unless something else has taken its path since."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISSOCK(st.st_mode) and st.st_ino == ino:
        path.unlink()
    else:
        log.warning("%s is no longer our socket; leaving it", path)


def _notify_systemd(message: str) -> None:
    from pyvswitch.daemon.systemd import notify

    notify(message)


def _detach(log_path: Path) -> int | None:
    """Fork into the background. In the parent, wait for readiness and return an exit code; in the child, None.

    The child reports through a pipe: b"ok" once serving, or an error text. Its stderr goes to ``log_path``.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(w)
        with os.fdopen(r, "rb") as pipe:
            msg = pipe.read().decode(errors="replace")
        if msg == "ok":
            return 0
        sys.stderr.write(f"pyvswitchd: {msg or 'exited before becoming ready'} (see {log_path})\n")
        return 1
    os.close(r)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    logfd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(devnull, 0)
    os.dup2(logfd, 1)
    os.dup2(logfd, 2)
    os.environ["PYVSWITCHD_READY_FD"] = str(w)
    return None


def _report_ready(message: str) -> None:
    fd = os.environ.pop("PYVSWITCHD_READY_FD", None)
    if fd is not None:
        with contextlib.suppress(OSError):
            os.write(int(fd), message.encode())
            os.close(int(fd))


def _exit_on_signal(signum: int, frame: object) -> None:
    if os.getpid() != _exit_on_signal.pid:  # type: ignore[attr-defined]
        # A forked helper (pyroute2 runs some netns work in a child) must not run the daemon's cleanup.
        os._exit(128 + signum)
    log.info("received %s", signal.Signals(signum).name)
    _exit_on_signal.last = signum  # type: ignore[attr-defined]
    raise SystemExit(0)


def _close_in_child(*held: Any) -> None:
    for obj in held:
        with contextlib.suppress(OSError):
            os.close(obj.fileno())


# The GIL's switch interval in the control plane (CPython's default: 5 ms), as in the forwarder (switch/runner.py).
# Its threads (API requests, the cluster agent's watches, a live migration's commit) wait on system calls
# (netlink, fsync, the forwarder's RPC) and retake the GIL after each one; behind a busy thread each retake could
# wait a whole interval, and a migration's commit makes tens of such calls inside the blackout.
SWITCH_INTERVAL_S = 0.0005


def run(args: argparse.Namespace) -> int:
    """Start everything, serve until signalled, stop everything. Returns the exit code."""
    fwd_cpu, guest_cpus = cpu_plan(args.forwarding_cpu, os.sched_getaffinity(0))
    if fwd_cpu is not None and guest_cpus:
        # The control plane stays off the forwarding CPU from its first import on: a restarting pyvswitchd
        # must not compete with the forwarder (which keeps forwarding through the restart) for that CPU.
        os.sched_setaffinity(0, guest_cpus)

    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))

    from pyvswitch.daemon.forwarder_link import ForwarderLink, ForwarderStart, RemoteCaptures, RemoteEngine

    # SIGTERM/SIGINT before serving, or re-raised by uvicorn after its graceful shutdown, end the process
    # through SystemExit so that the cleanup below always runs.
    _exit_on_signal.pid = os.getpid()  # type: ignore[attr-defined]
    _exit_on_signal.last = None  # type: ignore[attr-defined]
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_on_signal)
    state_dir = Path(args.state_dir).resolve()
    sock_path = Path(args.socket)
    lock = _lock_state_dir(state_dir)
    sock = _bind_socket(sock_path)
    sock_ino = os.lstat(sock_path).st_ino
    # pyroute2 forks helpers for namespace work, which inherit every descriptor; one outliving a kill -9 of
    # this daemon kept its listening socket (a successor's probe then hung on the full backlog for a minute)
    # and its state-directory lock. A forked child closes both at once: they are the daemon's alone.
    os.register_at_fork(after_in_child=lambda: _close_in_child(sock, lock))
    forwarder: ForwarderStart | None = None
    store: Store | None = None
    link: ForwarderLink | None = None
    steering: ReceiveSteering | None = None
    service: Service | None = None
    agent: ClusterAgent | None = None
    metrics_server: Any = None
    watchdog: Watchdog | None = None
    dashboard: Any = None
    # From here on any failure must still remove the socket (issue 11): the finally below does.
    try:
        # The data path runs in the forwarder process (daemon/forwarder.py), which outlives this one across a
        # restart: attaching to a running one resumes control without a gap in forwarding. A new one is started
        # first, so that its start-up overlaps this process's imports below (~0.35 s of each daemon start).
        forwarder = ForwarderStart(
            state_dir, fwd_cpu, guest_cpus, max(0.0, args.restart_grace), args.log_level
        )
        import uvicorn

        from pyvswitch.config.store import open_store
        from pyvswitch.daemon import provision
        from pyvswitch.daemon.api import create_app
        from pyvswitch.daemon.guests import Guests
        from pyvswitch.daemon.macpool import MacPool, host_id_from
        from pyvswitch.daemon.migration import Migrations
        from pyvswitch.daemon.ownership import owner_id
        from pyvswitch.daemon.service import Service, nic_specs
        from pyvswitch.daemon.steering import ReceiveSteering
        from pyvswitch.datapath.rps import steer_receive

        host_id = args.host_id if args.host_id is not None else host_id_from(_machine_id(), str(state_dir))
        pool = MacPool(host_id)
        store = open_store(state_dir / "config.db")  # a corrupt file is moved aside, not a traceback
        provision.configure_guest_rx(guest_cpus if args.receive_steering == "on" else frozenset())
        link = forwarder.link()
        engine = RemoteEngine(link)
        # A run-time setting, not a forwarder argument: a forwarder kept across a restart takes it too.
        engine.set_busy_poll(args.busy_poll)
        log.info(
            "pyvswitchd %s: state %s, socket %s, MAC pool %s-%s, forwarding CPU %s, guest receive CPUs %s, "
            "forwarder pid %d",
            pyvswitch.__version__,
            state_dir,
            sock_path,
            pool.first,
            pool.last,
            "any" if fwd_cpu is None else fwd_cpu,
            sorted(guest_cpus) or "any",
            link.pid,
        )
        # The ownership mark on what it creates lets a later start collect what a crash left (issue 11).
        service = Service(
            store,
            engine,
            provision.Kernel(owner_id(state_dir)),
            pool,
            captures=RemoteCaptures(link),  # type: ignore[arg-type]
        )
        # QEMU guests of qemu VMs run on the guests' CPUs, not on the forwarding CPU (TCG is CPU-bound).
        guests = Guests(
            owner_id(state_dir),
            image_cache=Path(args.guest_image_cache) if args.guest_image_cache else state_dir / "guest-image",
            cpus=guest_cpus,
        )
        service.guests = guests
        if args.cluster is not None:
            from pyvswitch.daemon.tunnels import Tunnels

            agent = _cluster_agent(args, state_dir)
            tunnels = Tunnels(agent, engine, args.tunnel_datapath)
            agent.on_change = tunnels.refresh  # a watched record changed: the tunnel's tables follow
            service.cluster = agent
            service.tunnels = tunnels
            agent.start()  # registers and publishes on its own thread: an unreachable cluster delays nothing
        # Migrations a crash interrupted are settled first (issue 11): the store must say which VMs this host
        # owns before start-up provisions them, or start-up would re-create a veth another host owns.
        migrations = Migrations(service, engine)
        migrations.recover()
        service.start()
        migrations.finish_recovery()
        if guest_cpus and args.receive_steering == "auto":
            steering = ReceiveSteering(
                busy_seconds=lambda: engine.busy_s,
                guest_nics=lambda: [(n.netns, n.peer) for n in nic_specs(service.config).values()],
                steer=steer_receive,
                set_default=provision.configure_guest_rx,
                cpus=guest_cpus,
            )
            steering.start()
        app = create_app(service, migrations)
        dashboard = app.state.dashboard
        if args.metrics_listen is not None:
            from prometheus_client import start_http_server

            # prometheus_client's own server: it answers the registry's exposition on any GET, nothing else.
            metrics_server, _ = start_http_server(
                args.metrics_addr[1], args.metrics_addr[0], registry=app.state.metrics.registry
            )
            log.info("metrics on http://%s/metrics", args.metrics_listen)
        config = uvicorn.Config(
            app,
            log_config=None,
            log_level=args.log_level,
            access_log=False,
            lifespan="off",
        )
        server = uvicorn.Server(config)
        _report_ready("ok")
        _notify_systemd("READY=1")
        interval = watchdog_interval()
        if interval is not None:  # WatchdogSec: keep-alives while the forwarding loop progresses
            watchdog = Watchdog(engine.health, interval).start()
        # uvicorn handles SIGTERM/SIGINT while serving: it stops accepting, finishes requests, returns.
        asyncio.run(server.serve(sockets=[sock]))
        _notify_systemd("STOPPING=1")
        log.info("stopping")
        return 0
    finally:
        if dashboard is not None:
            dashboard.stop()
        if watchdog is not None:
            watchdog.stop()
        if metrics_server is not None:
            metrics_server.shutdown()
            metrics_server.server_close()
        if steering is not None:
            steering.stop()
        if agent is not None:
            # A full stop (Ctrl-C) takes the host out of the cluster at once; SIGTERM (a restart) keeps its
            # lease and records, which a successor within the TTL picks up.
            agent.stop(leave=_exit_on_signal.last == signal.SIGINT)  # type: ignore[attr-defined]
        if service is not None:
            service.stop()
            if isinstance(service.guests, Guests) and _exit_on_signal.last == signal.SIGINT:  # type: ignore[attr-defined]
                service.guests.stop_all()  # a full stop (Ctrl-C) ends the guests; SIGTERM leaves them for a restart
        if link is None and forwarder is not None:
            forwarder.abandon()
        if link is not None:
            if _exit_on_signal.last == signal.SIGINT or args.restart_grace <= 0:  # type: ignore[attr-defined]
                link.shutdown()
            else:
                link.detach(args.restart_grace)
        if store is not None:
            store.close()
        sock.close()
        _unlink_own_socket(sock_path, sock_ino)
        lock.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.install_service:
        from pyvswitch.daemon.systemd import install

        # The script beside this interpreter (a venv's or the system's), so the unit runs this installation.
        script = Path(sys.executable).parent / "pyvswitchd"
        exe = str(script) if script.exists() else "/usr/bin/pyvswitchd"
        done = install(exe, Path(args.install_root))
        sys.stdout.write(f"wrote {done['unit']} (ExecStart {done['exec_start']})\n")
        sys.stdout.write(
            "enabled pyvswitchd.service\n"
            if done["enabled"]
            else "start it: systemctl enable --now pyvswitchd\n"
        )
        return 0
    if args.host_id is not None and not 0 <= args.host_id <= 0xFFFF:
        sys.stderr.write("pyvswitchd: --host-id must be 0-65535\n")
        return 2
    if args.detach:
        state_dir = Path(args.state_dir)
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        code = _detach(state_dir / "pyvswitchd.log")
        if code is not None:
            return code
    from pyvswitch.daemon import logs

    # Text on stderr, JSON lines in STATE_DIR/log (a state directory we cannot use: stderr alone; run() says why).
    state_dir = Path(args.state_dir)
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        logs.setup("pyvswitchd", args.log_level, state_dir)
    except OSError:
        logs.setup("pyvswitchd", args.log_level, None)
    signal.signal(signal.SIGHUP, lambda *_: logs.reopen())  # logrotate: reopen the files, keep the level
    if os.geteuid() != 0:
        log.warning("not running as root: namespaces and devices will fail")
    try:
        return run(args)
    except StartupError as exc:
        _report_ready(str(exc))
        log.error("%s", exc)
        return 1
    except ConfigError as exc:
        _report_ready(f"stored configuration is invalid: {exc}")
        log.error("stored configuration is invalid:")
        for field, message in exc.problems:
            log.error("  %s: %s", field, message)
        return 1
    except (PyvswitchError, OSError, sqlite3.Error) as exc:
        # A state directory or database the daemon cannot use: one line, not a traceback (issue 11).
        _report_ready(str(exc))
        log.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
