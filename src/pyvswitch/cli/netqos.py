"""The NetQos and DCB cmdlets (hyperv-networking.md §5.4, §5.5): host QoS policies, traffic classes, PFC, DCBX.

Host QoS policies: ``New/Get/Set/Remove-NetQosPolicy`` (templates -SMB -iSCSI -NFS -LiveMigration -Cluster -FCOE
-Default, each alone; conditions -IPProtocolMatchCondition, -IP{Src,Dst}PrefixMatchCondition,
-IP{Src,Dst}PortMatchCondition, -IPPortMatchCondition, -IP{Src,Dst}Port{Start,End}MatchCondition; actions
-MinBandwidthWeightAction, -ThrottleRateActionBitsPerSecond, -DSCPAction, -PriorityValue8021Action; -Precedence,
127 by default). DCB: ``New/Get/Set/Remove-NetQosTrafficClass``, ``Enable/Disable/Get-NetQosFlowControl``
(without -Priority: every priority, as Windows), ``Set/Get-NetQosDcbxSetting -Willing``,
``Enable/Disable/Get-NetAdapterQos -Name``.

Bandwidths are bits per second, as Hyper-V's Int64 parameters; for convenience a decimal k/M/G/T suffix is
accepted (``100M`` = 100,000,000 bit/s, ``1.5G``). A ``B`` (bytes) suffix is refused rather than guessed.
``-PolicyStore`` is accepted and ignored: every policy is kept by pyvswitchd (there is no GPO store).

Floor: a cmdlet family, on the framework (``cli.cmdlet``); ``cli.cmdlets`` puts :data:`CMDLETS` in the table.
The bandwidth parser is ``cli.units``' (the binder's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from pyvswitch.cli.client import JsonObj
from pyvswitch.cli.cmdlet.framework import (
    Args,
    Cmdlet,
    CmdletError,
    CmdletUsageError,
    Param,
    PType,
    Session,
    has_wildcard,
    like,
)
from pyvswitch.cli.cmdlet.output import show
from pyvswitch.cli.format import echo_json


def _error(a: Args, message: str) -> Exception:
    return CmdletError(a.cmdlet, message)


def _usage(a: Args, message: str) -> Exception:
    return CmdletUsageError(a.cmdlet, message)


def _seg(name: object) -> str:
    return quote(str(name), safe="")


# ---------------------------------------------------------------- NetQosPolicy

TEMPLATES = ("SMB", "iSCSI", "NFS", "LiveMigration", "Cluster", "FCOE", "Default")
# New/Set-NetQosPolicy parameters -> QosPolicyConfig fields (the template switches are handled apart).
POLICY_PARAMS = {
    "IPProtocolMatchCondition": "ip_protocol",
    "IPSrcPrefixMatchCondition": "ip_src_prefix",
    "IPDstPrefixMatchCondition": "ip_dst_prefix",
    "IPSrcPortMatchCondition": "ip_src_port",
    "IPDstPortMatchCondition": "ip_dst_port",
    "IPPortMatchCondition": "ip_port",
    "IPSrcPortStartMatchCondition": "ip_src_port_start",
    "IPSrcPortEndMatchCondition": "ip_src_port_end",
    "IPDstPortStartMatchCondition": "ip_dst_port_start",
    "IPDstPortEndMatchCondition": "ip_dst_port_end",
    "MinBandwidthWeightAction": "min_bandwidth_weight",
    "ThrottleRateActionBitsPerSecond": "throttle_rate",
    "DSCPAction": "dscp",
    "PriorityValue8021Action": "priority_8021",
    "Precedence": "precedence",
}


def policy_body(a: Args, *, new: bool) -> JsonObj:
    """New-NetQosPolicy's request body (POST /v1/qos/policies), or Set-NetQosPolicy's changes (PATCH)."""
    templates = [t for t in TEMPLATES if a.flag(t)]
    if len(templates) > 1:
        raise _usage(
            a, "Parameter set cannot be resolved: a template (-" + ", -".join(templates) + ") is used alone."
        )
    body: JsonObj = {"name": a.text("Name")} if new else {}
    if templates:
        body["template"] = templates[0]
    for param, field in POLICY_PARAMS.items():
        if a.has(param):
            body[field] = a.values[param]
    if "ip_protocol" in body:
        body["ip_protocol"] = {"tcp": "TCP", "udp": "UDP", "both": "Both"}[str(body["ip_protocol"]).lower()]
    if not new and not body:
        raise _error(a, "give a condition, an action or -Precedence to change")
    return body


def policy_obj(q: Mapping[str, Any]) -> JsonObj:
    """A policy as Get-NetQosPolicy shows it (Format-List)."""

    def port(field: str) -> object:
        lo, hi = q.get(f"{field}_start"), q.get(f"{field}_end")
        return q.get(field) if lo is None else f"{lo}-{hi}"

    obj: JsonObj = {
        "Name": q["name"],
        "Owner": "pyvswitchd",
        "NetworkProfile": "All",
        "Precedence": q.get("precedence", 127),
        "Template": q.get("template") or "None",
        "IPProtocol": q.get("ip_protocol") or "Both",
        "IPSrcPrefix": q.get("ip_src_prefix"),
        "IPDstPrefix": q.get("ip_dst_prefix"),
        "IPSrcPort": port("ip_src_port"),
        "IPDstPort": port("ip_dst_port"),
        "IPPort": q.get("ip_port"),
        "MinBandwidthWeight": q.get("min_bandwidth_weight"),
        "ThrottleRate": q.get("throttle_rate"),
        "DSCPValue": q.get("dscp"),
        "PriorityValue": q.get("priority_8021"),
    }
    # Format-List shows only what is set, as Windows does.
    return {k: v for k, v in obj.items() if v is not None}


def new_netqospolicy(a: Args, s: Session) -> None:
    q = s.client.request("POST", "/qos/policies", json=policy_body(a, new=True))
    show(s, [policy_obj(q)], None, list_sep=",")


def get_netqospolicy(a: Args, s: Session) -> None:
    name = a.text("Name")
    pols = [q for q in s.client.request("GET", "/qos/policies") if name is None or like(q["name"], name)]
    if name is not None and not has_wildcard(name) and not pols:
        raise _error(
            a, f"No MSFT_NetQosPolicySettingData objects found with property 'Name' equal to '{name}'."
        )
    show(s, [policy_obj(q) for q in pols], None, list_sep=",")


def set_netqospolicy(a: Args, s: Session) -> None:
    q = s.client.request("PATCH", f"/qos/policies/{_seg(a.text('Name'))}", json=policy_body(a, new=False))
    if a.flag("PassThru") or s.json:
        show(s, [policy_obj(q)], None, list_sep=",")


def remove_netqospolicy(a: Args, s: Session) -> None:
    s.client.request("DELETE", f"/qos/policies/{_seg(a.text('Name'))}")


# ---------------------------------------------------------------- NetQosTrafficClass

CLASS_COLUMNS = ("Name", "Algorithm", "Bandwidth(%)", "Priority")


def priorities(a: Args, name: str = "Priority") -> list[int]:
    """A Byte[] of 802.1p priorities: '3,5' -> [3, 5]; each 0-7."""
    out: list[int] = []
    for item in str(a.text(name) or "").split(","):
        item = item.strip()
        if not item:
            continue
        if not item.isdigit() or int(item) > 7:
            raise _usage(
                a,
                f"Cannot validate argument on parameter '{name}'. {item!r} is not an 802.1p priority 0-7.",
            )
        out.append(int(item))
    if not out:
        raise _usage(a, f"Cannot validate argument on parameter '{name}'. The argument is null or empty.")
    return out


def class_body(a: Args, *, new: bool) -> JsonObj:
    body: JsonObj = {"name": a.text("Name")} if new else {}
    if a.has("Priority"):
        body["priorities"] = priorities(a)
    if a.has("Algorithm"):
        body["algorithm"] = a.text("Algorithm")
    if a.has("BandwidthPercentage"):
        body["bandwidth_percentage"] = a.number("BandwidthPercentage")
    if not new and not body:
        raise _error(a, "give -Priority, -Algorithm or -BandwidthPercentage")
    return body


def class_obj(c: Mapping[str, Any]) -> JsonObj:
    return {
        "Name": c["name"],
        "Algorithm": c["algorithm"],
        "Bandwidth(%)": c["bandwidth_percentage"],
        "Priority": list(c["priorities"]),
    }


def new_netqostrafficclass(a: Args, s: Session) -> None:
    c = s.client.request("POST", "/qos/traffic-classes", json=class_body(a, new=True))
    show(s, [class_obj(c)], CLASS_COLUMNS, list_sep=",")


def get_netqostrafficclass(a: Args, s: Session) -> None:
    name = a.text("Name")
    classes = [
        c for c in s.client.request("GET", "/qos/traffic-classes") if name is None or like(c["name"], name)
    ]
    show(s, [class_obj(c) for c in classes], CLASS_COLUMNS, list_sep=",")


def set_netqostrafficclass(a: Args, s: Session) -> None:
    c = s.client.request(
        "PATCH", f"/qos/traffic-classes/{_seg(a.text('Name'))}", json=class_body(a, new=False)
    )
    if s.json:
        echo_json([class_obj(c)])


def remove_netqostrafficclass(a: Args, s: Session) -> None:
    s.client.request("DELETE", f"/qos/traffic-classes/{_seg(a.text('Name'))}")


# ---------------------------------------------------------------- PFC, DCBX, adapters


def flow_control_priorities(current: Sequence[int], a: Args, enable: bool) -> list[int]:
    """The PFC priority list after Enable/Disable-NetQosFlowControl [-Priority]; no -Priority means all 8."""
    chosen = priorities(a) if a.has("Priority") else list(range(8))
    if enable:
        return sorted(set(current) | set(chosen))
    return [p for p in current if p not in chosen]


def _flow_control(a: Args, s: Session, enable: bool) -> None:
    dcb = s.client.request("GET", "/qos/dcb")
    wanted = flow_control_priorities(dcb["flow_control_priorities"], a, enable)
    s.client.request("PATCH", "/qos/dcb", json={"flow_control_priorities": wanted})


def enable_netqosflowcontrol(a: Args, s: Session) -> None:
    _flow_control(a, s, True)


def disable_netqosflowcontrol(a: Args, s: Session) -> None:
    _flow_control(a, s, False)


def get_netqosflowcontrol(a: Args, s: Session) -> None:
    enabled = set(s.client.request("GET", "/qos/dcb")["flow_control_priorities"])
    wanted = priorities(a) if a.has("Priority") else list(range(8))
    show(s, [{"Priority": p, "Enabled": p in enabled} for p in wanted], ("Priority", "Enabled"), list_sep=",")


def set_netqosdcbxsetting(a: Args, s: Session) -> None:
    s.client.request("PATCH", "/qos/dcb", json={"willing": a.boolean("Willing")})


def get_netqosdcbxsetting(a: Args, s: Session) -> None:
    dcb = s.client.request("GET", "/qos/dcb")
    show(s, [{"Willing": bool(dcb["willing"]), "PolicySet": "Global"}], None, list_sep=",")


def adapter_qos_obj(ad: Mapping[str, Any]) -> JsonObj:
    return {
        "Name": ad["name"],
        "Enabled": bool(ad["enabled"]),
        "Kind": "Team" if ad.get("kind") == "team" else "NetAdapter",
        "SwitchName": ad.get("switch") or "",
    }


def enable_netadapterqos(a: Args, s: Session) -> None:
    # -NoRestart is accepted: nothing restarts here, DCB is applied by the switch's scheduler.
    for name in _names(a):
        s.client.request("PUT", f"/qos/adapters/{_seg(name)}")


def disable_netadapterqos(a: Args, s: Session) -> None:
    for name in _names(a):
        s.client.request("DELETE", f"/qos/adapters/{_seg(name)}")


def _names(a: Args) -> list[str]:
    return [n.strip() for n in str(a.text("Name") or "").split(",") if n.strip()]


def get_netadapterqos(a: Args, s: Session) -> None:
    name = a.text("Name")
    ads = [ad for ad in s.client.request("GET", "/qos/adapters") if name is None or like(ad["name"], name)]
    if name is not None and not ads:
        raise _error(
            a, f"No MSFT_NetAdapterQosSettingData objects found with property 'Name' equal to '{name}'."
        )
    show(s, [adapter_qos_obj(ad) for ad in ads], ("Name", "Enabled", "Kind", "SwitchName"), list_sep=",")


# The NetQos and DCB cmdlets, gathered by ``cli.cmdlets``.

_S = PType.SWITCH
_PORT = (0, 65535)
_POLICY_PARAMS = (
    *(Param(t, _S) for t in TEMPLATES),
    Param("IPProtocolMatchCondition", choices=("TCP", "UDP", "Both")),
    Param("IPSrcPrefixMatchCondition"),
    Param("IPDstPrefixMatchCondition"),
    Param("IPSrcPortMatchCondition", PType.UINT32, range=_PORT),
    Param("IPDstPortMatchCondition", PType.UINT32, range=_PORT),
    Param("IPPortMatchCondition", PType.UINT32, range=_PORT),
    Param("IPSrcPortStartMatchCondition", PType.UINT32, range=_PORT),
    Param("IPSrcPortEndMatchCondition", PType.UINT32, range=_PORT),
    Param("IPDstPortStartMatchCondition", PType.UINT32, range=_PORT),
    Param("IPDstPortEndMatchCondition", PType.UINT32, range=_PORT),
    Param("MinBandwidthWeightAction", PType.UINT32, range=(1, 100)),
    Param("ThrottleRateActionBitsPerSecond", PType.UINT64),
    Param("DSCPAction", PType.UINT32, range=(0, 63)),
    Param("PriorityValue8021Action", PType.UINT32, range=(0, 7)),
    Param("Precedence", PType.UINT32, range=(0, 255)),
    Param("PolicyStore"),
    Param("Confirm", _S),
)
_BW_NOTE = "Bandwidths are bit/s; k, M, G, T suffixes are accepted for convenience (100M, 1G)."
CMDLETS: tuple[Cmdlet, ...] = (
    Cmdlet(
        "New-NetQosPolicy",
        (Param("Name", position=0, mandatory=True), *_POLICY_PARAMS),
        new_netqospolicy,
        "Create a host QoS policy: classify by template or conditions, act by weight, throttle, DSCP, 802.1p.",
        "Templates: -SMB (TCP 445), -iSCSI (3260), -NFS (2049), -LiveMigration (6600), -Cluster (3343),\n"
        "-FCOE (EtherType 0x8906), -Default (what no other policy matches); a template is used alone.\n"
        + _BW_NOTE
        + " -PolicyStore is ignored: policies are always persistent.",
    ),
    Cmdlet(
        "Get-NetQosPolicy",
        (Param("Name", position=0), Param("PolicyStore")),
        get_netqospolicy,
        "List host QoS policies (-Name takes wildcards).",
    ),
    Cmdlet(
        "Set-NetQosPolicy",
        (Param("Name", position=0, mandatory=True), *_POLICY_PARAMS, Param("PassThru", _S)),
        set_netqospolicy,
        "Change a host QoS policy's conditions, actions or precedence.",
        _BW_NOTE,
    ),
    Cmdlet(
        "Remove-NetQosPolicy",
        (Param("Name", position=0, mandatory=True), Param("PolicyStore"), Param("Confirm", _S)),
        remove_netqospolicy,
        "Remove a host QoS policy.",
    ),
    Cmdlet(
        "New-NetQosTrafficClass",
        (
            Param("Name", position=0, mandatory=True),
            Param("Priority", position=1, mandatory=True),
            Param("Algorithm", position=2, choices=("ETS", "Strict")),
            Param("BandwidthPercentage", PType.UINT32, range=(1, 99)),
            Param("Confirm", _S),
        ),
        new_netqostrafficclass,
        "Create a DCB traffic class of 802.1p priorities (ETS share or Strict).",
        "-Priority 3,5 takes the priorities from [Default]; ETS classes may take 99 % together.",
    ),
    Cmdlet(
        "Get-NetQosTrafficClass",
        (Param("Name", position=0),),
        get_netqostrafficclass,
        "List traffic classes, [Default] first.",
    ),
    Cmdlet(
        "Set-NetQosTrafficClass",
        (
            Param("Name", position=0, mandatory=True),
            Param("Priority"),
            Param("Algorithm", choices=("ETS", "Strict")),
            Param("BandwidthPercentage", PType.UINT32, range=(1, 99)),
            Param("Confirm", _S),
        ),
        set_netqostrafficclass,
        "Change a traffic class's priorities, algorithm or bandwidth.",
    ),
    Cmdlet(
        "Remove-NetQosTrafficClass",
        (Param("Name", position=0, mandatory=True), Param("Confirm", _S)),
        remove_netqostrafficclass,
        "Remove a traffic class; its priorities and bandwidth return to [Default].",
    ),
    Cmdlet(
        "Enable-NetQosFlowControl",
        (Param("Priority", position=0),),
        enable_netqosflowcontrol,
        "Enable PFC on 802.1p priorities (all without -Priority).",
    ),
    Cmdlet(
        "Disable-NetQosFlowControl",
        (Param("Priority", position=0),),
        disable_netqosflowcontrol,
        "Disable PFC on 802.1p priorities (all without -Priority).",
    ),
    Cmdlet(
        "Get-NetQosFlowControl",
        (Param("Priority", position=0),),
        get_netqosflowcontrol,
        "PFC state per priority.",
    ),
    Cmdlet(
        "Set-NetQosDcbxSetting",
        (Param("Willing", PType.BOOL, mandatory=True), Param("Confirm", _S)),
        set_netqosdcbxsetting,
        "DCBX willing: $true takes DCB settings from the peer; $false enforces the local ones.",
        "The default is $true, as on Windows: local classes and PFC apply only after -Willing $false.",
    ),
    Cmdlet("Get-NetQosDcbxSetting", (), get_netqosdcbxsetting, "Show the DCBX willing setting."),
    Cmdlet(
        "Enable-NetAdapterQos",
        (Param("Name", position=0, mandatory=True), Param("NoRestart", _S)),
        enable_netadapterqos,
        "Enable DCB on an adapter (an uplink or bound NIC, or a team).",
    ),
    Cmdlet(
        "Disable-NetAdapterQos",
        (Param("Name", position=0, mandatory=True), Param("NoRestart", _S)),
        disable_netadapterqos,
        "Disable DCB on an adapter.",
    ),
    Cmdlet(
        "Get-NetAdapterQos",
        (Param("Name", position=0),),
        get_netadapterqos,
        "Adapters DCB can be enabled on, and whether it is.",
    ),
)
