"""Bandwidths as the command line takes them: bit/s, with an optional decimal k/M/G/T suffix.

A leaf of the CLI shared by both front ends: the cmdlet binder converts Int64/UInt64 parameters with it and the
Linux verbs' ``--max-bandwidth``-style options use it through ``verbkit.bandwidth_callback``, so ``100M`` means
the same in ``Set-VMNetworkAdapter`` and ``port set``.
"""

from __future__ import annotations

import re

_BW_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kKmMgGtT]?)\s*(?:bit/s|bps|b/s)?\s*$")
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
# Hyper-V's bandwidth parameters are Int64; what the daemon accepts is narrower and checked there.
MAX_BANDWIDTH = 2**63 - 1


def parse_bandwidth(text: str) -> int:
    """'100000000', '100M', '1G', '1.5g', '10k' -> bit/s. Raises ValueError saying what is accepted."""
    m = _BW_RE.match(text)
    if m is None:
        hint = (
            " (bytes are not accepted: give bit/s, e.g. 800M for 100 MB/s)"
            if text.strip()[-1:] in "bB"
            else ""
        )
        raise ValueError(
            f"{text!r} is not a bandwidth in bit/s: a number, optionally with a k, M, G or T suffix (1G){hint}"
        )
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not value <= MAX_BANDWIDTH:  # also inf: 400 digits made int() raise OverflowError (issue 11, fuzzing)
        raise ValueError(f"{text!r} is more than {MAX_BANDWIDTH} bit/s")
    if value != int(value):
        raise ValueError(f"{text!r} is not a whole number of bit/s")
    return int(value)


_BYTES_RE = re.compile(r"^\s*(\d+)\s*([kKmMgGtT][bB])?\s*$")
_BYTE_UNITS = {"": 1, "kb": 2**10, "mb": 2**20, "gb": 2**30, "tb": 2**40}


def parse_ps_bytes(text: str) -> int:
    """A PowerShell byte literal, as New-VM -MemoryStartupBytes takes it: '536870912', '512MB', '1GB' (binary
    multipliers, as PowerShell's KB/MB/GB/TB are). Raises ValueError saying what is accepted."""
    m = _BYTES_RE.match(text)
    if m is None:
        raise ValueError(
            f"{text!r} is not a size in bytes: a number, optionally with KB, MB, GB or TB (512MB)"
        )
    return int(m.group(1)) * _BYTE_UNITS[(m.group(2) or "").lower()]
