"""Issue 11 (security, item 1): nothing in src/ is ever passed through a shell.

A VM adapter's peer_interface once ran as root through a ``sh -c`` line built for receive steering. Commands
are argv lists; this test reads every module of src/ and fails on ``shell=True``, ``os.system``,
``os.popen``, ``subprocess.getoutput``/``getstatusoutput``, ``asyncio.create_subprocess_shell`` and any
shell invoked with ``-c`` (``["sh", "-c", ...]``, over several lines or not, or ``"sh -c ..."`` in a string).
"""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "/bin/sh", "/bin/bash", "/usr/bin/sh", "/usr/bin/bash"}
SHELL_CALLS = {
    ("os", "system"),
    ("os", "popen"),
    ("subprocess", "getoutput"),
    ("subprocess", "getstatusoutput"),
    ("asyncio", "create_subprocess_shell"),
}
SHELL_TEXT = re.compile(r"(^|[\s/\"'])(ba|da|z|k)?sh\s+-c\b")


def shell_uses(source: str, filename: str = "<src>") -> list[str]:
    """Where ``source`` hands something to a shell: ``line: what`` for each place."""
    out: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and not kw.value.value):
                    out.append(f"{node.lineno}: shell={ast.unparse(kw.value)}")
            f = node.func
            if (
                isinstance(f, ast.Attribute)
                and isinstance(f.value, ast.Name)
                and (f.value.id, f.attr) in SHELL_CALLS
            ):
                out.append(f"{node.lineno}: {f.value.id}.{f.attr}()")
        elif isinstance(node, ast.List | ast.Tuple):
            words = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            for a, b in itertools.pairwise(words):
                if a in SHELLS and isinstance(b, str) and b.startswith("-") and "c" in b:
                    out.append(f"{node.lineno}: [{a!r}, {b!r}, ...]")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and SHELL_TEXT.search(node.value)
            and not _is_docstring_like(node.value)
        ):
            out.append(f"{node.lineno}: {node.value[:60]!r}")
    return out


def _is_docstring_like(text: str) -> bool:
    # Prose that says "no sh -c" (this rule's own documentation) is not a command line.
    return "\n" in text or text.rstrip().endswith(".")


def test_src_passes_nothing_through_a_shell() -> None:
    """issue 11: `sh -c` is gone from the tree (lab/netns steering, lab hosts, the traffic generator)."""
    found = [
        f"{path.relative_to(SRC)}:{where}"
        for path in sorted(SRC.rglob("*.py"))
        for where in shell_uses(path.read_text(), str(path))
    ]
    assert found == [], "shell invocations in src/:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        # The receive-steering line of main before issue 11 (datapath/rps.py), as ruff formats it.
        'cmd = ["ip", "netns", "exec", ns] + [\n    "sh",\n    "-c",\n    SCRIPT,\n    "sh",\n    ifname,\n]',
        'argv = ["nsenter", "--net=x", "sh", "-c", script]',
        "subprocess.run(line, shell=True)",
        "subprocess.run(line, shell=flag)",
        "os.system('ip link')",
        "os.popen(cmd).read()",
        "subprocess.getoutput(cmd)",
        "cmd = 'sh -c \"echo 1\"'",
        "run(('/bin/bash', '-ec', script))",
    ],
)
def test_the_check_finds_each_kind(source: str) -> None:
    assert shell_uses(source) != []


@pytest.mark.parametrize(
    "source",
    [
        'subprocess.run(["ip", "link", "show"], check=True)',
        "subprocess.run(argv, shell=False)",
        '"""Nothing goes through sh -c here."""',
        'p = ["ssh", "-c", "aes128-ctr", host]',
    ],
)
def test_the_check_leaves_argv_alone(source: str) -> None:
    assert shell_uses(source) == []
