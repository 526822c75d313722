"""Hypothesis strategies for the command-line grammars (issue 11, item 6): cmdlet lines as a Hyper-V admin (or a
cat on the keyboard) types them, and what-if frame descriptions.

Cmdlet lines are built from the cmdlet's own parameter table: real names, aliases, abbreviations and misspellings;
``-Name value``, ``-Name:value`` and bare switches; values that are typed right, wrong, empty, huge, quoted, lists
split by the shell at commas, wildcards and PowerShell booleans; stray positionals.
"""

from __future__ import annotations

from hypothesis import strategies as st

from pyvswitch.cli.cmdlet.framework import Cmdlet, PType
from pyvswitch.cli.cmdlets import CMDLETS

# Cmdlets that reach beyond the daemon under test: Move-VM connects to other hosts' daemons, starting a NetEvent
# session writes a capture file where the line says.
EXCLUDED_CMDLETS = {"Move-VM", "Start-NetEventSession"}
FUZZED_CMDLETS = tuple(c for c in CMDLETS if c.name not in EXCLUDED_CMDLETS)

NAMES = [
    "sw",
    "ext",
    "web",
    "web-eth0",
    "t1",
    "pol",
    "tc1",
    "eth1",
    "eth2",
    "eth3",
    "nosuch",
    "*",
    "w*",
    "[Default]",
]
WEIRD = ["", " ", "-", "--", "-1", "$true", "$false", "$null", ",", "1,", ",2", "'q'", '"', "'", "\x00", "é" * 20,
         "a" * 300, "1-100, 200", "0x10", "1e3", "10G", "9" * 40, "-0", "+5", "\uff11\uff12", "a:b", "-Name:", "|", "fl"]  # fmt: skip

text_values = st.one_of(
    st.sampled_from(NAMES),
    st.sampled_from(WEIRD),
    st.text(max_size=20),
    st.integers(-(2**40), 2**40).map(str),
    st.lists(st.integers(-5, 5000).map(str), min_size=1, max_size=4).map(",".join),
    st.sampled_from(
        ["10.0.0.1/24", "::1", "10.0.0.0/8", "02:00:00:00:00:01", "02-00-00-00-00-01", "ANY", "TCP"]
    ),
)


def value_for(p_type: PType, choices: tuple[str, ...]) -> st.SearchStrategy[str]:
    typed: list[st.SearchStrategy[str]] = [text_values]
    if choices:
        typed.append(st.sampled_from(choices))
        typed.append(st.sampled_from(choices).map(str.lower))
    if p_type in (PType.INT, PType.UINT32, PType.INT64, PType.UINT64):
        typed.append(st.integers(-1, 2**64).map(str))
        typed.append(st.sampled_from(["1k", "100M", "1.5G", "10T", "8", "0", "-8"]))
    if p_type in (PType.BOOL, PType.SWITCH):
        typed.append(st.sampled_from(["$true", "$false", "1", "0", "true", "yes"]))
    return st.one_of(*typed)


def plausible_value(p_type: PType, choices: tuple[str, ...]) -> st.SearchStrategy[str]:
    """A value of the right type: what gets a line past the binder to the family's code and the daemon."""
    if choices:
        return st.sampled_from(choices)
    if p_type in (PType.INT, PType.UINT32):
        return st.sampled_from(["0", "1", "3", "10", "20", "100", "4094", "4095", "65535", "-1"])
    if p_type in (PType.INT64, PType.UINT64):
        return st.sampled_from(["0", "8", "1000000", "100M", "1G", "10G"])
    if p_type is PType.BOOL:
        return st.sampled_from(["$true", "$false"])
    return st.one_of(
        st.sampled_from(NAMES), st.sampled_from(["10.0.0.1/24", "1-100,200", "02:00:00:00:00:99"])
    )


@st.composite
def cmdlet_line(draw: st.DrawFn) -> tuple[Cmdlet, list[str]]:
    """A cmdlet and the words after its name: half of them plausible (every mandatory parameter, right types),
    half anything."""
    cmd = draw(st.sampled_from(FUZZED_CMDLETS))
    if draw(st.booleans()):
        chosen = [p for p in cmd.params if p.mandatory]
        chosen += draw(st.lists(st.sampled_from(cmd.params), max_size=3)) if cmd.params else []
        line: list[str] = []
        for p in dict.fromkeys(chosen):
            line += (
                [f"-{p.name}"]
                if p.type is PType.SWITCH
                else [f"-{p.name}", draw(plausible_value(p.type, p.choices))]
            )
        return cmd, line
    words: list[str] = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 9))
        if kind <= 6 and cmd.params:
            p = draw(st.sampled_from(cmd.params))
            name = draw(st.sampled_from([p.name, *p.aliases]))
            spelled = draw(
                st.sampled_from(
                    [
                        name,
                        name.lower(),
                        name.upper(),
                        name[: max(1, len(name) // 2)],
                        name + "x",
                        name[1:] or "x",
                    ]
                )
            )
            value = draw(value_for(p.type, p.choices))
            form = draw(st.integers(0, 3))
            if p.type is PType.SWITCH and form < 2:
                words.append(f"-{spelled}")
            elif form == 0:
                words.append(f"-{spelled}:{value}")
            elif form == 3:
                words.append(f"-{spelled}")  # a value left out
            else:
                words += [f"-{spelled}", *value.split(" ")] if " " in value else [f"-{spelled}", value]
        elif kind <= 8:
            words.append(draw(text_values))  # a positional
        else:
            words += draw(
                st.sampled_from([["|", "fl"], ["|", "Format-List"], ["-?"], ["-WhatIf"], ["-Confirm:$false"]])
            )
    return cmd, words


WORDS = [
    "src",
    "dst",
    "vlan",
    "pcp",
    "ip",
    "sip",
    "dip",
    "sport",
    "dport",
    "len",
    "tcp",
    "udp",
    "icmp",
    "arp",
]
FIELD_VALUES = st.one_of(
    st.integers(-70000, 100_000).map(str),
    st.sampled_from(
        [
            "02:00:00:00:00:0b",
            "ff:ff:ff:ff:ff:ff",
            "-00000000001",
            "10.0.0.1",
            "::1",
            "10.0.0.1>10.0.0.2",
            "::1>10.0.0.1",
            ">",
            "",
            "abc",
            "1_0",
            "+5",
            "٣",
            "9" * 30,
            "0x50",
            "1e3",
        ]
    ),
    st.text(max_size=12),
)


@st.composite
def whatif_description(draw: st.DrawFn) -> str:
    """A what-if frame description: known words with values of every sort, and some noise."""
    parts: list[str] = []
    for _ in range(draw(st.integers(0, 8))):
        word = draw(st.sampled_from(WORDS))
        if word in ("tcp", "udp", "icmp", "arp") and draw(st.booleans()):
            parts.append(word)
        else:
            parts.append(f"{word}={draw(FIELD_VALUES)}")
        if draw(st.integers(0, 9)) == 0:
            parts.append(draw(st.text(max_size=8)))
    return " ".join(parts)
