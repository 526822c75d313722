"""The guest image: a Debian cloud kernel and a busybox initramfs, built locally from Debian packages at first use.

Nothing is downloaded outside the package registry: ``apt-get download`` fetches ``linux-image-cloud-amd64``'s
current kernel package and ``busybox-static``; ``dpkg-deb -x`` unpacks them; the initramfs holds busybox, the
kernel modules a guest NIC needs (virtio-net, the virtio console for the agent, 8021q for VLAN subinterfaces,
each with what it depends on), the host's iperf3 with its shared libraries, and two scripts: ``/init`` (mounts,
loads the modules, configures each NIC from the kernel command line, says READY on the console) and the agent
(commands over a virtio-serial port, see guest/agent.py).

The image lives in a cache directory keyed by the kernel version and a digest of what goes in, so a new kernel
package or a changed init script builds a new image and an unchanged one is reused (~4 s to build).

The initramfs is a "newc" cpio archive written here by hand: Debian's ``cpio`` is not installed by default and
the format is six lines of header (the kernel reads it uncompressed).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path(os.environ.get("PYVSWITCH_GUEST_IMAGE_CACHE", "/var/tmp/pyvswitch-guest-image"))
KERNEL_META_PACKAGE = "linux-image-cloud-amd64"
BUSYBOX_PACKAGE = "busybox-static"
# What a guest NIC, the agent's port and VLAN subinterfaces need; built-ins are skipped (not in modules.dep).
WANTED_MODULES = ("virtio_pci", "virtio_net", "virtio_console", "8021q", "af_packet")
AGENT_PORT_NAME = "pyvswitch.agent"
READY_LINE = "PYVSWITCH-GUEST-READY"


class ImageError(RuntimeError):
    """The guest image could not be built (the message says which step and why)."""


# ---------------------------------------------------------------------------------------------- scripts

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /tmp /run /var/run
mount -t devpts devpts /dev/pts
for m in $(cat /etc/modules.order); do insmod /lib/modules/$m; done
ip link set lo up
hostname "$(sed -n 's/.*pyvswitch.hostname=\([^ ]*\).*/\1/p' /proc/cmdline)"
# pyvswitch.nic=MAC,CIDR[+CIDR...][,GATEWAY] once per adapter: the NIC with that MAC is brought up with those.
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    pyvswitch.nic=*)
      spec=${arg#pyvswitch.nic=}
      mac=$(echo "$spec" | cut -d, -f1); cidr=$(echo "$spec" | cut -d, -f2); gw=$(echo "$spec" | cut -d, -f3)
      for d in /sys/class/net/*; do
        if [ "$(cat $d/address)" = "$mac" ]; then
          n=${d##*/}
          ip link set "$n" up
          for a in $(echo "$cidr" | tr + ' '); do ip addr add "$a" dev "$n"; done
          [ -n "$gw" ] && ip route add default via "$gw"
        fi
      done;;
  esac
done
for p in /sys/class/virtio-ports/*; do
  [ "$(cat $p/name 2>/dev/null)" = "AGENT_PORT" ] && /bin/agent /dev/${p##*/} &
done
echo "READY_LINE"
exec sh -c 'while true; do sleep 3600; done'
""".replace("AGENT_PORT", AGENT_PORT_NAME).replace("READY_LINE", READY_LINE)

# One request per line, "ID BASE64(command)"; one answer per line, "ID RC BASE64(stdout) BASE64(stderr)".
# Each command runs in the background so a long one (iperf3 -s) does not hold up the next request. A read
# returns end-of-file while no host is connected to the port (the daemon restarting, or the guest just arrived
# by live migration and its new QEMU's socket has no client yet): the agent waits and reads again.
AGENT = r"""#!/bin/busybox sh
port=$1
exec 3<>"$port"
echo "AGENT-UP" >&3
while true; do
  while read -r id cmd <&3; do
    (
      sh -c "$(echo "$cmd" | base64 -d)" >/tmp/$id.out 2>/tmp/$id.err </dev/null
      rc=$?
      echo "$id $rc $(base64 -w0 </tmp/$id.out) $(base64 -w0 </tmp/$id.err)" >&3
      rm -f /tmp/$id.out /tmp/$id.err
    ) &
  done
  sleep 0.1
done
"""


# ------------------------------------------------------------------------------------------------ newc


def _newc_entry(name: str, mode: int, data: bytes = b"", ino: int = 0) -> bytes:
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0]
    header = b"070701" + b"".join(f"{v:08x}".encode() for v in fields)
    out = header + name.encode() + b"\0"
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)
    return out


def newc_archive(root: Path) -> bytes:
    """A newc cpio archive of everything under ``root`` (directories, files with their mode, symlinks)."""
    parts = []
    ino = 1
    for path in sorted(_walk(root)):
        rel = str(path.relative_to(root))
        st = path.lstat()
        if path.is_symlink():
            data = os.readlink(path).encode()
        elif path.is_dir():
            data = b""
        else:
            data = path.read_bytes()
        parts.append(_newc_entry(rel, st.st_mode, data, ino))
        ino += 1
    parts.append(_newc_entry("TRAILER!!!", 0))
    return b"".join(parts)


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in dirnames + filenames:
            yield base / name


# --------------------------------------------------------------------------------------------- modules


def module_load_order(modules_dep: str, wanted: Iterable[str]) -> list[str]:
    """Module paths (relative to lib/modules/VERSION) to insmod in order: every dependency before what needs it.
    Names not in modules.dep are built into the kernel and skipped."""
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in modules_dep.splitlines():
        if ":" not in line:
            continue
        path, rest = line.split(":", 1)
        deps[path] = rest.split()
        by_name[_module_name(path)] = path
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in deps.get(path, []):
            visit(dep)
        order.append(path)

    for name in wanted:
        found = by_name.get(name.replace("-", "_"))
        if found is not None:
            visit(found)
    return order


def _module_name(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    return re.sub(r"\.ko(\.(xz|zst|gz))?$", "", base).replace("-", "_")


# ----------------------------------------------------------------------------------------------- image


@dataclass(frozen=True)
class GuestImage:
    kernel: Path
    initramfs: Path
    kernel_version: str


def _run(*cmd: str, cwd: Path | None = None) -> str:
    try:
        res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=True, timeout=300)
    except FileNotFoundError as exc:
        raise ImageError(f"{cmd[0]} is not installed") from exc
    except subprocess.CalledProcessError as exc:
        raise ImageError(f"{' '.join(cmd)} failed: {exc.stderr.strip()[-400:]}") from exc
    return res.stdout


def kernel_package() -> str:
    """The versioned kernel package the cloud meta-package currently depends on."""
    out = _run("apt-cache", "depends", KERNEL_META_PACKAGE)
    m = re.search(r"Depends:\s*(linux-image-\S+)", out)
    if m is None:
        raise ImageError(f"apt-cache knows no kernel behind {KERNEL_META_PACKAGE} (apt-get update?)")
    return m[1]


def _shared_libraries(binary: str) -> list[str]:
    """The absolute paths ldd names for ``binary`` (its loader included)."""
    libs = []
    for line in _run("ldd", binary).splitlines():
        m = re.search(r"(/\S+) \(0x", line)
        if m:
            libs.append(m[1])
    return libs


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.hexdigest()[:12]


def build_image(cache_dir: Path = DEFAULT_CACHE_DIR) -> GuestImage:
    """The cached image for the current kernel package, built first if missing."""
    package = kernel_package()
    version = package.removeprefix("linux-image-")
    iperf3 = shutil.which("iperf3")
    key = _digest(INIT.encode(), AGENT.encode(), " ".join(WANTED_MODULES).encode(), str(iperf3).encode())
    target = cache_dir / f"{version}-{key}"
    image = GuestImage(target / "vmlinuz", target / "initramfs.cpio", version)
    if image.kernel.exists() and image.initramfs.exists():
        return image
    cache_dir.mkdir(parents=True, exist_ok=True)
    log.info("building the guest image for kernel %s in %s", version, target)
    with tempfile.TemporaryDirectory(prefix="pyvswitch-guest-", dir=cache_dir) as tmp:
        work = Path(tmp)
        debs, unpacked, root = work / "debs", work / "unpacked", work / "root"
        for d in (debs, unpacked, root):
            d.mkdir()
        _run("apt-get", "download", package, BUSYBOX_PACKAGE, cwd=debs)
        for deb in debs.glob("*.deb"):
            _run("dpkg-deb", "-x", str(deb), str(unpacked))
        # The package ships no modules.dep (the postinst makes it); depmod writes it in the unpacked tree.
        _run("depmod", "-b", str(unpacked), version)
        modroot = unpacked / "lib" / "modules" / version
        order = module_load_order((modroot / "modules.dep").read_text(), WANTED_MODULES)
        for sub in ("bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "etc", "tmp", "lib/modules"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy2(unpacked / "bin" / "busybox", root / "bin" / "busybox")
        for rel in order:
            dst = root / "lib" / "modules" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(modroot / rel, dst)
        (root / "etc" / "modules.order").write_text("\n".join(order) + "\n")
        (root / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
        if iperf3 is not None:
            shutil.copy2(iperf3, root / "usr" / "bin" / "iperf3")
            for lib in _shared_libraries(iperf3):
                dst = root / lib.lstrip("/")
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(os.path.realpath(lib), dst)
        for name, text in (("init", INIT), ("bin/agent", AGENT)):
            (root / name).write_text(text)
            (root / name).chmod(0o755)
        staged = work / "image"
        staged.mkdir()
        shutil.copy2(unpacked / "boot" / f"vmlinuz-{version}", staged / "vmlinuz")
        (staged / "initramfs.cpio").write_bytes(newc_archive(root))
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
    return image
