"""The Linux verbs' views for people: switches, ports, VMs, MAC tables, counters, drops and the whole
configuration as aligned text (``cli.format``'s ``table`` and ``detail``).

Pure functions of the daemon's JSON, below the commands of ``cli.verbs`` (which print them unless ``--json``
asks for the answer unchanged) and importable without click's command tree, so tests call them directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pyvswitch.cli.format import counter_rows, detail, table
from pyvswitch.cli.vlanspec import format_vlan
from pyvswitch.config.vocabulary import format_bps, shown_port, shown_switch


def _bits(v: object) -> str:
    return format_bps(int(v)) if isinstance(v, int) and v else "-"


def _names(items: Sequence[Any]) -> str:
    return ", ".join(str(i) for i in items)


def _ips(port: Mapping[str, Any]) -> str:
    return _names(port.get("ip") or [])


def switch_detail(sw: Mapping[str, Any]) -> str:
    return detail(
        [
            ("name", sw.get("name")),
            ("type", sw.get("type")),
            ("uplink", sw.get("net_adapter") or "-"),
            ("management os", sw.get("allow_management_os")),
            ("flood unknown unicast", sw.get("flood_unknown_unicast")),
            ("mac aging (s)", sw.get("mac_aging_s")),
            ("mac table size", sw.get("mac_table_size")),
            ("notes", sw.get("notes")),
            ("min bandwidth mode", sw.get("minimum_bandwidth_mode") or "Default"),
            ("default flow weight", sw.get("default_flow_minimum_bandwidth_weight", 1)),
            (
                "default flow absolute",
                _bits(sw.get("default_flow_minimum_bandwidth_absolute"))
                if sw.get("default_flow_minimum_bandwidth_absolute") is not None
                else "- (10 % of capacity)",
            ),
            ("ports", _names(sw.get("ports") or [])),
        ]
    )


def switch_table(switches: Sequence[Mapping[str, Any]]) -> str:
    return table(
        ["name", "type", "uplink", "management-os", "flood-unknown", "ports"],
        [
            [
                s.get("name"),
                s.get("type"),
                s.get("net_adapter") or "-",
                s.get("allow_management_os"),
                s.get("flood_unknown_unicast"),
                _names(s.get("ports") or []),
            ]
            for s in switches
        ],
    )


def port_table(ports: Sequence[Mapping[str, Any]]) -> str:
    return table(
        ["name", "kind", "switch", "vm", "interface", "mac", "ip", "vlan"],
        [
            [
                p.get("name"),
                p.get("kind"),
                p.get("switch") or "-",
                p.get("vm") or "-",
                p.get("interface") or "-",
                p.get("mac") or "-",
                _ips(p) or "-",
                format_vlan(p.get("vlan")),
            ]
            for p in ports
        ],
    )


def port_detail(p: Mapping[str, Any]) -> str:
    return detail(
        [
            ("name", p.get("name")),
            ("kind", p.get("kind")),
            ("switch", p.get("switch") or "- (not connected)"),
            ("vm", p.get("vm") or "-"),
            ("interface", p.get("interface") or "-"),
            ("peer interface", p.get("peer_interface") or "-"),
            ("mac", p.get("mac") or "- (learned)"),
            ("ip", _ips(p) or "-"),
            ("vlan", format_vlan(p.get("vlan"))),
            ("mac spoofing", p.get("mac_spoofing")),
            ("dhcp guard", p.get("dhcp_guard")),
            ("router guard", p.get("router_guard")),
            ("allow teaming", p.get("allow_teaming")),
            ("storm limit (pps)", p.get("storm_limit") or "- (off)"),
            ("mac limit", p.get("mac_limit") or "- (none)"),
            ("ieee priority tag", p.get("ieee_priority_tag")),
            ("acl entries", len(p.get("acls") or [])),
            ("extended acl entries", len(p.get("extended_acls") or [])),
            ("maximum bandwidth", _bits(p.get("maximum_bandwidth"))),
            ("minimum weight", p.get("minimum_bandwidth_weight") or "- (default flow)"),
            ("minimum absolute", _bits(p.get("minimum_bandwidth_absolute"))),
            ("link speed", _bits(p.get("link_speed")) if p.get("kind") in ("uplink", "interface") else "-"),
            *([("iov weight", p.get("iov_weight") or 0), ("sr-iov path", p["iov"])] if p.get("iov") else []),
        ]
    )


def vm_runs_in(vm: Mapping[str, Any]) -> str:
    """Where a VM runs: its namespace, or "qemu" with the guest's state."""
    if vm.get("kind") == "qemu":
        return f"qemu ({vm.get('state') or 'stopped'})"
    return str(vm.get("netns"))


def vm_table(vms: Sequence[Mapping[str, Any]]) -> str:
    rows: list[list[object]] = []
    for vm in vms:
        ports = vm.get("ports") or []
        if not ports:
            rows.append([vm.get("name"), vm_runs_in(vm), "-", "-", "-", "-", "-"])
        for p in ports:
            rows.append(
                [
                    vm.get("name"),
                    vm_runs_in(vm),
                    f"{p.get('name')} ({p.get('peer_interface') or '?'})",
                    p.get("switch") or "-",
                    p.get("mac") or "-",
                    _ips(p) or "-",
                    format_vlan(p.get("vlan")),
                ]
            )
    return table(["vm", "runs in", "adapter", "switch", "mac", "ip", "vlan"], rows)


def vm_detail(vm: Mapping[str, Any]) -> str:
    if vm.get("kind") == "qemu":
        boot = vm.get("boot_s")
        head = detail(
            [
                ("name", vm.get("name")),
                ("kind", "qemu"),
                ("state", vm.get("state")),
                *([("booted in", f"{boot:.1f} s")] if boot is not None else []),
                ("memory", f"{vm.get('memory_mb')} MiB"),
                ("cpus", vm.get("cpus")),
                ("qemu pid", vm.get("pid") or "-"),
                *([("error", vm.get("error"))] if vm.get("error") else []),
            ]
        )
    else:
        head = detail([("name", vm.get("name")), ("netns", vm.get("netns"))])
    ports = vm.get("ports") or []
    if not ports:
        return head + "\nadapters: none"
    return head + "\n\n" + port_table(ports)


def fdb_table(rows: Sequence[Mapping[str, Any]]) -> str:
    return table(
        ["mac", "vlan", "port", "age (s)", "static"],
        [[r.get("mac"), r.get("vlan"), r.get("port"), r.get("age_s"), r.get("static")] for r in rows],
    )


def counters_text(data: Mapping[str, Any]) -> str:
    out: list[str] = []
    switches = data.get("switches") or {}
    for name, sw in switches.items() if isinstance(switches, Mapping) else ():
        if not isinstance(sw, Mapping):
            continue
        out.append(f"switch {name}")
        headers, rows = counter_rows(sw.get("ports") or {})
        out.append(table(headers, rows) if rows else "  no ports")
        drops = sw.get("drops") or {}
        if isinstance(drops, Mapping) and drops:
            out.append("drops: " + ", ".join(f"{k}={v}" for k, v in sorted(drops.items())))
        else:
            out.append("drops: none")
        fdb = sw.get("fdb")
        if isinstance(fdb, Mapping) and fdb:
            limits = fdb.get("mac_limits") or {}
            out.append("fdb: " + ", ".join(f"{k}={v}" for k, v in fdb.items() if k != "mac_limits"))
            for port, lim in sorted(limits.items()) if isinstance(limits, Mapping) else ():
                out.append(
                    f"mac limit {port}: {lim.get('limit')} (learned {lim.get('learned')}, "
                    f"not learned {lim.get('not_learned')})"
                )
        out.append("")
    if not out:
        out.append("no switches")
    if data.get("loop_errors"):
        out.append(f"forwarding loop errors: {data['loop_errors']}")
    return "\n".join(out).rstrip()


def config_text(cfg: Mapping[str, Any]) -> str:
    ports = list(cfg.get("ports") or [])
    switches = [
        {**s, "ports": [p.get("name") for p in ports if p.get("switch") == s.get("name")]}
        for s in cfg.get("switches") or []
    ]
    vms = [{"name": v.get("name"), "netns": v.get("netns") or v.get("name")} for v in cfg.get("vms") or []]
    return "\n".join(
        [
            "Switches",
            switch_table(switches),
            "",
            "VMs",
            table(["name", "netns"], [[v["name"], v["netns"]] for v in vms]),
            "",
            "Ports",
            port_table(ports),
        ]
    )


def drop_rows(counters: dict[str, Any]) -> list[list[object]]:
    """Every drop counter by switch, element (ingress, forward, a port's guards or ACLs, an extension, the
    device) and reason, largest first, with what the reason means: where frames died and why (VPP's ``show
    errors``)."""
    rows: list[list[object]] = []
    for name, data in (counters.get("switches") or {}).items():
        sw = shown_switch(name)  # a standalone team's hidden switch (config/team_nics.py) is the team
        for element, e in (data.get("elements") or {}).items():
            rows += [[sw, element, r, n] for r, n in (e.get("drops") or {}).items()]
        for engine_port, p in (data.get("ports") or {}).items():
            port = shown_port(name, engine_port)
            rows += [[sw, f"{port} device", r, n] for r, n in (p.get("drops") or {}).items()]
            for element, e in (p.get("security") or {}).items():
                rows += [[sw, f"{port} {element}", r, n] for r, n in (e.get("drops") or {}).items()]
            for direction, a in (p.get("acl") or {}).items():
                rows += [[sw, f"{port} ACL {direction}", r, n] for r, n in (a.get("drops") or {}).items()]
        for ext in data.get("extensions") or []:
            rows += [[sw, f"extension {ext['name']}", r, n] for r, n in (ext.get("drops") or {}).items()]
            if ext.get("errors"):
                rows.append([sw, f"extension {ext['name']}", "raised", ext["errors"]])
    meaning = counters.get("drop_reasons") or {}
    rows = [[*r, meaning.get(r[2], "")] for r in rows if r[3]]
    return sorted(rows, key=lambda r: -int(r[3]))  # type: ignore[call-overload]
