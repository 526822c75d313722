"""The sample third-party extension package (tests/fixtures/pyvswitch_ext_sample), whose code the extension
developer's guide (docs/extensions.md) shows, in a switch on memory devices: its entry points name its classes,
the capture counts MAC pairs, the filters count and drop ICMP in stack order, and the API 1.4 sampler takes its
settings and sees decided samples. (tests/system/test_third_party_extension.py installs the same package and
runs it in a real pyvswitchd.)"""

from __future__ import annotations

import importlib
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from pyvswitch.config.schema import ExtensionSetting, PortConfig, PortKind, SwitchConfig
from pyvswitch.errors import ConfigError
from pyvswitch.ext.api import ENTRY_POINT_GROUP, Extension
from pyvswitch.ext.registry import Registry, check_class
from pyvswitch.testing.frames import BCAST, eth, icmp, ipv4, udp
from pyvswitch.testing.harness import SwitchHarness

PACKAGE = Path(__file__).resolve().parents[1] / "fixtures" / "pyvswitch_ext_sample"
A, B, C = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"
PING = eth(B, A, ipv4("10.0.0.1", "10.0.0.2", 1, icmp(8)))
DNS = eth(B, A, ipv4("10.0.0.1", "10.0.0.2", 17, udp(5000, 53, b"q")))


@pytest.fixture(scope="module")
def sample() -> Iterator[ModuleType]:
    """The package's module, imported from its source tree (not installed)."""
    sys.path.insert(0, str(PACKAGE / "src"))
    try:
        yield importlib.import_module("pyvswitch_ext_sample")
    finally:
        sys.path.remove(str(PACKAGE / "src"))
        sys.modules.pop("pyvswitch_ext_sample", None)


def classes(sample: ModuleType) -> dict[str, type[Extension]]:
    """The entry points of the package's pyproject.toml, loaded: name -> class."""
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
    found = {}
    for name, target in project["entry-points"][ENTRY_POINT_GROUP].items():
        module, _, attr = target.partition(":")
        assert module == sample.__name__
        found[name] = getattr(sample, attr)
    return found


def harness(sample: ModuleType, *enabled: ExtensionSetting) -> SwitchHarness:
    registry = Registry.of(*classes(sample).values(), builtin=False)
    sw = SwitchConfig(name="s", extensions=list(enabled))
    ports = [
        PortConfig(name=n, kind=PortKind.VM, vm=n, switch="s", mac=m)
        for n, m in (("a", A), ("b", B), ("c", C))
    ]
    return SwitchHarness([sw], ports, registry)


def instance(h: SwitchHarness, name: str) -> object:
    stack = h.engine.switches["s"].ext
    assert stack is not None
    return next(s.instance for s in stack.slots if s.name == name)


def ext_drops(h: SwitchHarness, name: str) -> object:
    counters = h.engine.counters()["switches"]
    assert isinstance(counters, dict)
    return next(e["drops"] for e in counters["s"]["extensions"] if e["name"] == name)


def test_every_entry_point_names_a_class_that_says_the_same_name(sample: ModuleType) -> None:
    found = classes(sample)
    assert {"flowcount", "icmpcount", "no-icmp", "samplecount"} <= found.keys()
    for name, cls in found.items():
        assert check_class(name, cls) is None, name


def test_flowcount_counts_frames_per_mac_pair_on_ingress(sample: ModuleType) -> None:
    h = harness(sample, ExtensionSetting(name="flowcount"))
    for _ in range(3):
        h.send("a", DNS)
    h.send("b", eth(A, B, b"reply"))
    h.take("a"), h.take("b")
    assert instance(h, "flowcount").status() == {"pairs": {f"{A}>{B}": 3, f"{B}>{A}": 1}}  # type: ignore[attr-defined]


def test_the_counter_before_the_blocker_sees_the_icmp_the_blocker_then_drops(sample: ModuleType) -> None:
    h = harness(sample, ExtensionSetting(name="icmpcount"), ExtensionSetting(name="no-icmp"))
    h.send("a", PING)
    h.send("a", DNS)
    assert h.take("b") == [DNS]  # the ping died, the DNS query passed
    assert instance(h, "icmpcount").status() == {"icmp": 1}  # type: ignore[attr-defined]
    assert ext_drops(h, "no-icmp") == {"icmp-blocked": 1}  # what `pyvswitch show drops` lists
    # Blocker first: the counter no longer sees it.
    h.configure([SwitchConfig(name="s", extensions=[ExtensionSetting(name="no-icmp"), ExtensionSetting(name="icmpcount")])],
                h.config.ports)  # fmt: skip
    h.send("a", PING)
    h.expect_nothing("b", "c")
    assert instance(h, "icmpcount").status() == {"icmp": 1}  # type: ignore[attr-defined]


def test_samplecount_takes_its_settings_and_sees_where_sampled_frames_went(sample: ModuleType) -> None:
    h = harness(sample, ExtensionSetting(name="samplecount", settings={"sampling_rate": 1}))
    ext = instance(h, "samplecount")
    assert ext.sampling_rate == 1  # type: ignore[attr-defined]
    h.send("a", eth(BCAST, A))  # flooded to b and c
    h.send("a", eth(B, "02:00:00:00:00:99"))  # a spoofed source MAC: dropped by the MAC guard
    h.send("b", eth(A, B))
    h.advance(1.5)  # the tick hands the held samples over
    status = ext.status()  # type: ignore[attr-defined]
    assert status == {"per_port": {"a": 2, "b": 1}, "dropped": 1, "rate": 1}
    assert ext.ticks >= 1  # type: ignore[attr-defined]


def test_a_bad_setting_is_refused_with_the_field_named(sample: ModuleType) -> None:
    with pytest.raises(ConfigError) as err:
        harness(sample, ExtensionSetting(name="samplecount", settings={"sampling_rate": 0}))
    assert "sampling_rate" in str(err.value)
