"""The guest image's pieces that need no QEMU: the newc archive, module order, the kernel command line."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pyvswitch.guest.image import GuestImage, module_load_order, newc_archive
from pyvswitch.guest.qemu import GuestNic, GuestSpec, kernel_cmdline, qemu_argv

DEP = """kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/net/8021q/8021q.ko: kernel/net/802/garp.ko kernel/net/802/mrp.ko kernel/net/802/stp.ko kernel/net/llc/llc.ko
kernel/net/802/garp.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko
kernel/net/802/stp.ko: kernel/net/llc/llc.ko
kernel/net/802/mrp.ko:
kernel/net/llc/llc.ko:
"""


def test_modules_load_after_everything_they_depend_on_and_built_ins_are_skipped() -> None:
    order = module_load_order(DEP, ["virtio_net", "8021q", "af_packet"])
    assert order.index("kernel/net/core/failover.ko") < order.index("kernel/drivers/net/net_failover.ko")
    assert order.index("kernel/drivers/net/net_failover.ko") < order.index("kernel/drivers/net/virtio_net.ko")
    assert order.index("kernel/net/llc/llc.ko") < order.index("kernel/net/802/stp.ko")
    assert order.index("kernel/net/802/garp.ko") < order.index("kernel/net/8021q/8021q.ko")
    assert len(order) == len(set(order)) == 8  # each once; af_packet is built in (not in modules.dep)


def read_newc(archive: bytes) -> dict[str, tuple[int, bytes]]:
    """An independent reader of the format as the kernel's initramfs unpacker reads it (Documentation/
    driver-api/early-userspace/buffer-format.rst): 110-byte ASCII header, name, data, each padded to 4."""
    entries: dict[str, tuple[int, bytes]] = {}
    pos = 0
    while True:
        header = archive[pos : pos + 110]
        assert header[:6] == b"070701", f"bad magic at {pos}"
        fields = [int(header[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        mode, filesize, namesize = fields[1], fields[6], fields[11]
        name_start = pos + 110
        name = archive[name_start : name_start + namesize - 1].decode()
        assert archive[name_start + namesize - 1] == 0
        data_start = (name_start + namesize + 3) & ~3
        if name == "TRAILER!!!":
            return entries
        entries[name] = (mode, archive[data_start : data_start + filesize])
        pos = (data_start + filesize + 3) & ~3


def test_newc_archive_holds_files_with_mode_and_bytes_directories_and_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "init").write_text("#!/bin/sh\necho hi\n")
    (root / "init").chmod(0o755)
    (root / "bin" / "data").write_bytes(bytes(range(256)) * 3 + b"x")  # a size that needs padding
    os.symlink("busybox", root / "bin" / "sh")
    entries = read_newc(newc_archive(root))
    assert set(entries) == {"bin", "init", "bin/data", "bin/sh"}
    assert entries["init"] == (stat.S_IFREG | 0o755, b"#!/bin/sh\necho hi\n")
    assert entries["bin/data"][1] == bytes(range(256)) * 3 + b"x"
    assert stat.S_ISDIR(entries["bin"][0])
    assert stat.S_ISLNK(entries["bin/sh"][0]) and entries["bin/sh"][1] == b"busybox"


def test_each_nic_is_configured_from_the_kernel_command_line() -> None:
    spec = GuestSpec(
        "web01",
        (
            GuestNic("pvt1", "52:54:00:00:00:01", ("10.0.0.10/24", "10.0.0.11/24"), "10.0.0.1"),
            GuestNic("pvt2", "52:54:00:00:00:02"),
        ),
    )
    line = kernel_cmdline(spec)
    assert "pyvswitch.nic=52:54:00:00:00:01,10.0.0.10/24+10.0.0.11/24,10.0.0.1" in line
    assert "pyvswitch.nic=52:54:00:00:00:02," in line.split()
    assert "pyvswitch.hostname=web01" in line


@pytest.mark.parametrize("accel", ["kvm", "tcg"])
def test_qemu_gets_one_virtio_nic_per_adapter_on_its_tap_without_vhost(accel: str, tmp_path: Path) -> None:
    spec = GuestSpec("g", (GuestNic("pvt1", "52:54:00:00:00:01"), GuestNic("pvt2", "52:54:00:00:00:02")))
    argv = qemu_argv(spec, GuestImage(tmp_path / "k", tmp_path / "i", "v"), tmp_path, accel)
    netdevs = [argv[i + 1] for i, a in enumerate(argv) if a == "-netdev"]
    assert netdevs == [
        "tap,id=n0,ifname=pvt1,script=no,downscript=no,vhost=off",
        "tap,id=n1,ifname=pvt2,script=no,downscript=no,vhost=off",
    ]
    assert argv[argv.index("-accel") + 1].startswith(accel)
    assert ("-cpu" in argv) == (accel == "kvm")
