"""MAC addresses as 48-bit ints: parsing, formatting, and the bits that matter to a switch."""

from __future__ import annotations

BROADCAST = 0xFFFFFFFFFFFF


_HEX = frozenset("0123456789abcdefABCDEF")


def parse_mac(text: str) -> int:
    """Parse 'aa:bb:cc:dd:ee:ff', 'aa-bb-cc-dd-ee-ff' or 'aabbccddeeff' (Hyper-V style) into an int.

    Raises ValueError with the offending text.
    """
    digits = text.strip().replace(":", "").replace("-", "").replace(".", "")
    # Hex digits only: int(_, 16) also takes a sign, underscores and other scripts' digits ("-00000000001"
    # parsed as -1, which no 6-byte field can hold: issue 11's what-if fuzzing).
    if len(digits) != 12 or not _HEX.issuperset(digits):
        raise ValueError(f"not a MAC address: {text!r}")
    return int(digits, 16)


def format_mac(mac: int) -> str:
    """Format as lower-case colon-separated hex."""
    raw = mac.to_bytes(6, "big")
    return ":".join(f"{b:02x}" for b in raw)


def is_multicast(mac: int) -> bool:
    """Group bit (I/G) set: broadcast or multicast."""
    return bool((mac >> 40) & 0x01)


def is_local_admin(mac: int) -> bool:
    """Locally administered bit (U/L) set."""
    return bool((mac >> 40) & 0x02)
