"""Sizes as the command line takes them (cli/units.py)."""

from __future__ import annotations

from pyvswitch.cli.units import parse_ps_bytes


def test_powershell_byte_literals_use_binary_multipliers() -> None:
    """New-VM -MemoryStartupBytes 512MB is 512 MiB, as in PowerShell; a bandwidth's 'M' stays decimal."""
    assert parse_ps_bytes("512MB") == 512 * 2**20 == parse_ps_bytes("536870912")
    assert parse_ps_bytes("1gb") == 2**30 and parse_ps_bytes("64KB") == 65536
    for bad in ("", "lots", "1.5GB", "512M", "-1MB"):
        try:
            parse_ps_bytes(bad)
        except ValueError as exc:
            assert "512MB" in str(exc)
        else:
            raise AssertionError(f"{bad!r} accepted")
