"""`pyvswitch qos ...`: bandwidth status, host QoS policies, DCB traffic classes, PFC, DCBX, DCB adapters.

The Linux-style twin of ``cli.netqos``'s cmdlets, on the same REST routes:

- ``qos show [SWITCH]``: capacity, reservation and default flow; per port and per traffic class the bytes sent,
  drops, current rate, the share of the switch's traffic it has now next to the share it is configured for;
- ``qos policy add NAME (--template T | conditions) actions``, ``qos policy list``, ``qos policy del NAME``;
- ``qos class add NAME --priority 3[,5] [--algorithm ets|strict] [--bandwidth PCT]``, ``qos class list|del``;
- ``qos pfc on|off PRIO...``, ``qos dcbx --willing|--not-willing``, ``qos adapter enable|disable|list [NAME]``.

Switch and port bandwidth settings are options of ``switch add`` (``--min-bandwidth-mode``, ``--link-speed``)
and ``port set`` (``--max-bandwidth``, ``--min-weight``, ``--min-absolute``, ``--link-speed``). Bandwidths are
bit/s with optional k/M/G/T suffixes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import click

from pyvswitch.cli.client import Client, JsonObj
from pyvswitch.cli.format import detail, echo_json, table
from pyvswitch.cli.verbkit import BW_HELP, State, bandwidth_callback, json_flag, pass_state, removed
from pyvswitch.config.vocabulary import format_bps


def _seg(name: str) -> str:
    return quote(name, safe="")


def _bps(v: object) -> str:
    return format_bps(int(v)) if isinstance(v, int | float) and v else "0"


def _pct(v: object) -> str:
    return f"{float(v):.1f} %" if isinstance(v, int | float) else "-"


def _bytes(v: object) -> str:
    n = float(v) if isinstance(v, int | float) else 0.0
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _configured(p: Mapping[str, Any], mode: str) -> str:
    """What a port is configured for: its minimum (weight or absolute) and its cap."""
    parts = []
    if mode == "Weight":
        w = p.get("minimum_bandwidth_weight") or 0
        parts.append(f"weight {w}" if w else "default flow")
    elif mode == "Absolute":
        a = p.get("minimum_bandwidth_absolute") or 0
        parts.append(f"min {format_bps(a)}" if a else "default flow")
    if p.get("maximum_bandwidth"):
        parts.append(f"max {format_bps(int(p['maximum_bandwidth']))}")
    return ", ".join(parts) or "-"


def _share(rate: object, total: float) -> str:
    return _pct(100.0 * float(rate) / total) if isinstance(rate, int | float) and total else "-"


def qos_text(status: Mapping[str, Any]) -> str:
    """One switch's QoS status for people (QS-06): the switch, then its ports, then its traffic classes."""
    mode = str(status.get("mode") or "")
    capacity = status.get("capacity") or 0
    flow: Mapping[str, Any] = status.get("default_flow") or {}
    if mode == "Weight":
        default = f"weight {flow.get('weight')}"
    elif mode == "Absolute":
        default = f"{_bps(flow.get('absolute'))} reserved"
    else:
        default = "-"
    head = detail(
        [
            ("switch", status.get("switch")),
            ("mode", mode),
            ("capacity", format_bps(int(capacity)) if capacity else "unbounded"),
            ("reservation", _bps(status.get("reservation")) if mode == "Absolute" else "-"),
            ("default flow", f"{default} ({_pct(flow.get('bandwidth_percentage'))})"),
            ("dcb", _dcb_text(status.get("dcb") or {})),
            (
                "live counters",
                "yes" if status.get("running", True) else "no (the engine reports no QoS status)",
            ),
        ]
    )
    ports: Mapping[str, Mapping[str, Any]] = status.get("ports") or {}
    total = float(sum(p.get("rate_bps") or 0 for p in ports.values())) or float(capacity)
    rows = [
        [
            name,
            _bytes(p.get("sent_bytes")),
            p.get("drops") or 0,
            _bps(p.get("rate_bps")),
            _share(p.get("rate_bps"), total),
            _pct(p.get("bandwidth_percentage")),
            _configured(p, mode),
        ]
        for name, p in ports.items()
    ]
    out = [
        head,
        "",
        table(["port", "sent", "drops", "rate", "share now", "configured %", "configured"], rows),
    ]
    classes: Sequence[Mapping[str, Any]] = status.get("classes") or []
    if classes:
        ctotal = float(sum(c.get("rate_bps") or 0 for c in classes))
        crows = [
            [
                c.get("name"),
                ",".join(str(p) for p in c.get("priorities") or []),
                c.get("algorithm"),
                _bytes(c.get("sent_bytes")),
                c.get("drops") or 0,
                _bps(c.get("rate_bps")),
                _share(c.get("rate_bps"), ctotal),
                _pct(c.get("bandwidth_percentage")) if c.get("algorithm") == "ETS" else "strict",
                "yes" if c.get("paused") else "no",
                f"{c.get('pfc_sent') or 0}/{c.get('pfc_received') or 0}",
            ]
            for c in classes
        ]
        headers = ["class", "priorities", "algorithm", "sent", "drops", "rate", "share now", "configured", "paused",
                   "pfc tx/rx"]  # fmt: skip
        out += ["", table(headers, crows)]
    return "\n".join(out)


def _dcb_text(dcb: Mapping[str, Any]) -> str:
    if not dcb.get("enabled"):
        return "off"
    return (
        "on"
        if dcb.get("operational")
        else "enabled, not operational (DCBX willing: taking the peer's settings)"
    )


@click.group("qos")
def qos_group() -> None:
    """QoS: bandwidth status, host QoS policies, DCB traffic classes, PFC and DCBX (hyperv-networking §5)."""


@qos_group.command("show")
@click.argument("switch", required=False)
@json_flag
@pass_state
def qos_show(state: State, switch: str | None) -> None:
    """Per switch: capacity, reservation, default flow; per port and class: sent, drops, rate, share."""
    with state.client() as c:
        names = [switch] if switch is not None else [str(s["name"]) for s in c.switches()]
        statuses = [dict(c.request("GET", f"/switches/{_seg(n)}/qos")) for n in names]
    if state.json:
        echo_json(statuses if switch is None else statuses[0])
    elif not statuses:
        click.echo("no switches")
    else:
        click.echo("\n\n".join(qos_text(s) for s in statuses))


# ---------------------------------------------------------------- policies

TEMPLATES = {t.lower(): t for t in ("SMB", "iSCSI", "NFS", "LiveMigration", "Cluster", "FCOE", "Default")}


def _range(text: str | None, option: str) -> tuple[int, int] | None:
    if text is None:
        return None
    lo, _, hi = text.partition("-")
    try:
        return int(lo), int(hi or lo)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a port range like 49152-65535", param_hint=f"'{option}'"
        ) from None


def policy_add_body(name: str, template: str | None, protocol: str | None, src_prefix: str | None,
                    dst_prefix: str | None, src_port: int | None, dst_port: int | None, port: int | None,
                    src_ports: str | None, dst_ports: str | None, min_weight: int | None, throttle: int | None,
                    dscp: int | None, priority: int | None, precedence: int | None) -> JsonObj:  # fmt: skip
    """The POST /v1/qos/policies body a ``qos policy add`` line asks for."""
    body: JsonObj = {"name": name}
    if template is not None:
        body["template"] = TEMPLATES[template.lower()]
    if protocol is not None:
        body["ip_protocol"] = {"tcp": "TCP", "udp": "UDP", "both": "Both"}[protocol.lower()]
    fields = {
        "ip_src_prefix": src_prefix,
        "ip_dst_prefix": dst_prefix,
        "ip_src_port": src_port,
        "ip_dst_port": dst_port,
        "ip_port": port,
        "min_bandwidth_weight": min_weight,
        "throttle_rate": throttle,
        "dscp": dscp,
        "priority_8021": priority,
        "precedence": precedence,
    }
    body.update({k: v for k, v in fields.items() if v is not None})
    for side, text in (("src", src_ports), ("dst", dst_ports)):
        rng = _range(text, f"--{side}-ports")
        if rng is not None:
            body[f"ip_{side}_port_start"], body[f"ip_{side}_port_end"] = rng
    return body


@qos_group.group("policy")
def policy_group() -> None:
    """Host QoS policies (New/Get/Remove-NetQosPolicy)."""


@policy_group.command("add")
@click.argument("name")
@click.option("--template", type=click.Choice(list(TEMPLATES), case_sensitive=False),
              help="A built-in filter, used alone: smb (445), iscsi (3260), nfs (2049), livemigration (6600), "
                   "cluster (3343), fcoe (0x8906), default (everything else).")  # fmt: skip
@click.option("--protocol", type=click.Choice(["tcp", "udp", "both"], case_sensitive=False))
@click.option("--src-prefix", metavar="CIDR")
@click.option("--dst-prefix", metavar="CIDR")
@click.option("--src-port", type=click.IntRange(0, 65535))
@click.option("--dst-port", type=click.IntRange(0, 65535))
@click.option("--port", type=click.IntRange(0, 65535), help="Either port.")
@click.option("--src-ports", metavar="LO-HI", help="A source port range.")
@click.option("--dst-ports", metavar="LO-HI", help="A destination port range.")
@click.option("--min-weight", type=click.IntRange(1, 100), help="MinBandwidthWeightAction.")
@click.option(
    "--throttle",
    metavar="BIT/S",
    callback=bandwidth_callback,
    help=f"ThrottleRateActionBitsPerSecond ({BW_HELP}).",
)
@click.option("--dscp", type=click.IntRange(0, 63), help="DSCPAction: mark the DSCP.")
@click.option("--priority", type=click.IntRange(0, 7), help="PriorityValue8021Action: the 802.1p priority.")
@click.option("--precedence", type=click.IntRange(0, 255), help="255 wins (default 127).")
@json_flag
@pass_state
def policy_add(state: State, /, name: str, **options: Any) -> None:
    """Create host QoS policy NAME (New-NetQosPolicy)."""
    body = policy_add_body(name, **options)
    with state.client() as c:
        out = dict(c.request("POST", "/qos/policies", json=body))
    echo_json(out) if state.json else click.echo(f"added QoS policy {name}")


def policy_rows(pols: Sequence[Mapping[str, Any]]) -> list[list[object]]:
    rows: list[list[object]] = []
    for q in pols:
        match = q.get("template") or ", ".join(
            f"{k.removeprefix('ip_')}={v}"
            for k, v in q.items()
            if k.startswith("ip_") and v is not None and not (k == "ip_protocol" and v == "Both")
        )
        acts = ", ".join(
            f"{label} {fmt(q[k])}"
            for k, label, fmt in (
                ("min_bandwidth_weight", "weight", str),
                ("throttle_rate", "throttle", _bps),
                ("dscp", "dscp", str),
                ("priority_8021", "priority", str),
            )
            if q.get(k) is not None
        )
        rows.append([q["name"], match, acts, q.get("precedence", 127)])
    return rows


@policy_group.command("list")
@json_flag
@pass_state
def policy_list(state: State) -> None:
    """List host QoS policies (Get-NetQosPolicy)."""
    with state.client() as c:
        pols = list(c.request("GET", "/qos/policies"))
    if state.json:
        echo_json(pols)
    else:
        click.echo(
            table(["name", "match", "actions", "precedence"], policy_rows(pols)) if pols else "no policies"
        )


@policy_group.command("del")
@click.argument("name")
@json_flag
@pass_state
def policy_del(state: State, name: str) -> None:
    """Remove host QoS policy NAME (Remove-NetQosPolicy)."""
    with state.client() as c:
        c.request("DELETE", f"/qos/policies/{_seg(name)}")
    removed(state, "QoS policy", name)


# ---------------------------------------------------------------- traffic classes, PFC, DCBX, adapters


def parse_priorities(values: Sequence[str], option: str = "--priority") -> list[int]:
    """('3', '5,6') -> [3, 5, 6]; each an 802.1p priority 0-7."""
    out: list[int] = []
    for v in values:
        for item in v.split(","):
            item = item.strip()
            if not item:
                continue
            if not item.isdigit() or int(item) > 7:
                raise click.BadParameter(f"{item!r} is not an 802.1p priority 0-7", param_hint=f"'{option}'")
            out.append(int(item))
    return out


@qos_group.group("class")
def class_group() -> None:
    """DCB traffic classes (New/Get/Remove-NetQosTrafficClass); [Default] owns what no class claims."""


@class_group.command("add")
@click.argument("name")
@click.option("--priority", "prios", multiple=True, required=True, metavar="P[,P]", help="802.1p priorities.")
@click.option("--algorithm", type=click.Choice(["ets", "strict"], case_sensitive=False), default="ets")
@click.option("--bandwidth", type=click.IntRange(1, 99), help="ETS share in % (classes together <= 99).")
@json_flag
@pass_state
def class_add(state: State, name: str, prios: tuple[str, ...], algorithm: str, bandwidth: int | None) -> None:
    """Create traffic class NAME (New-NetQosTrafficClass)."""
    body: JsonObj = {
        "name": name,
        "priorities": parse_priorities(prios),
        "algorithm": "ETS" if algorithm.lower() == "ets" else "Strict",
    }
    if bandwidth is not None:
        body["bandwidth_percentage"] = bandwidth
    with state.client() as c:
        out = dict(c.request("POST", "/qos/traffic-classes", json=body))
    echo_json(out) if state.json else click.echo(f"added traffic class {name}")


@class_group.command("list")
@json_flag
@pass_state
def class_list(state: State) -> None:
    """List traffic classes with their priorities, algorithm and share, and which priorities have PFC."""
    with state.client() as c:
        dcb = dict(c.request("GET", "/qos/dcb"))
    classes = dcb.get("traffic_classes") or []
    if state.json:
        echo_json(classes)
        return
    pfc = set(dcb.get("flow_control_priorities") or [])
    rows = [
        [
            tc["name"],
            ",".join(map(str, tc["priorities"])) or "-",
            tc["algorithm"],
            f"{tc['bandwidth_percentage']} %" if tc["algorithm"] == "ETS" else "-",
            ",".join(str(p) for p in tc["priorities"] if p in pfc) or "-",
        ]
        for tc in classes
    ]
    click.echo(table(["class", "priorities", "algorithm", "bandwidth", "pfc"], rows))
    click.echo(
        f"dcbx willing: {dcb.get('willing')}; enabled on: {', '.join(dcb.get('adapters') or []) or 'none'}"
    )


@class_group.command("del")
@click.argument("name")
@json_flag
@pass_state
def class_del(state: State, name: str) -> None:
    """Remove traffic class NAME; its priorities and share return to [Default]."""
    with state.client() as c:
        c.request("DELETE", f"/qos/traffic-classes/{_seg(name)}")
    removed(state, "traffic class", name)


def _dcb(c: Client) -> JsonObj:
    return dict(c.request("GET", "/qos/dcb"))


@qos_group.command("pfc")
@click.argument("state_", metavar="on|off", type=click.Choice(["on", "off"], case_sensitive=False))
@click.argument("prios", nargs=-1, required=True, metavar="PRIO...")
@json_flag
@pass_state
def qos_pfc(state: State, state_: str, prios: tuple[str, ...]) -> None:
    """Enable or disable PFC on 802.1p priorities (Enable/Disable-NetQosFlowControl)."""
    chosen = parse_priorities(prios, "PRIO")
    with state.client() as c:
        current = list(_dcb(c).get("flow_control_priorities") or [])
        wanted = (
            sorted(set(current) | set(chosen))
            if state_.lower() == "on"
            else [p for p in current if p not in chosen]
        )
        out = dict(c.request("PATCH", "/qos/dcb", json={"flow_control_priorities": wanted}))
    echo_json(out) if state.json else click.echo(f"pfc on priorities: {','.join(map(str, wanted)) or 'none'}")


@qos_group.command("dcbx")
@click.option("--willing/--not-willing", required=True, default=None,
              help="Willing takes DCB settings from the peer (the default); not willing enforces ours.")  # fmt: skip
@json_flag
@pass_state
def qos_dcbx(state: State, willing: bool) -> None:
    """Set DCBX willing (Set-NetQosDcbxSetting -Willing)."""
    with state.client() as c:
        out = dict(c.request("PATCH", "/qos/dcb", json={"willing": willing}))
    echo_json(out) if state.json else click.echo(f"dcbx willing: {willing}")


@qos_group.command("adapter")
@click.argument("action", type=click.Choice(["enable", "disable", "list"], case_sensitive=False))
@click.argument("name", required=False)
@json_flag
@pass_state
def qos_adapter(state: State, action: str, name: str | None) -> None:
    """Enable or disable DCB on an adapter (an uplink or bound NIC, or a team), or list them (*-NetAdapterQos)."""
    action = action.lower()
    if action != "list" and name is None:
        raise click.UsageError(f"qos adapter {action} needs a NAME")
    with state.client() as c:
        if action == "list":
            rows = list(c.request("GET", "/qos/adapters"))
            if state.json:
                echo_json(rows)
            else:
                click.echo(table(["adapter", "kind", "switch", "dcb"],
                                 [[a["name"], a["kind"], a.get("switch") or "-", "on" if a["enabled"] else "off"] for a in rows]))  # fmt: skip
            return
        method = "PUT" if action == "enable" else "DELETE"
        out = dict(c.request(method, f"/qos/adapters/{_seg(str(name))}"))
    echo_json(out) if state.json else click.echo(f"dcb {'on' if out.get('enabled') else 'off'} on {name}")
