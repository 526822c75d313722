"""QEMU guests: real virtual machines on TAP ports (image built from Debian packages, QEMU, the guest agent)."""
