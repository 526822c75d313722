"""What changes between two configurations, object by object: the answer of `pyvswitch config diff`, of a
dry run (``-WhatIf``, REST ``?dry_run=ID``) and of `config import --dry-run`.

Both sides are the JSON form of a HostConfig (``model_dump(mode="json")``). Lists of named objects (switches,
ports, VMs, teams, QoS policies, SR-IOV adapters) are compared by name, the rest as values; a changed object
names its changed fields and their values before and after. Plain dicts in, plain dicts out: the CLI imports
this without pydantic.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

Change = dict[str, Any]


def diff(running: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[Change]:
    """Changes from ``running`` to ``wanted``: ``{"op": "add"|"remove"|"change", "kind", "name", "fields",
    "values"}``, ``values`` mapping each changed field to ``{"from": old, "to": new}`` (only for "change")."""
    out: list[Change] = []
    for kind in sorted(set(running) | set(wanted)):
        old, new = running.get(kind), wanted.get(kind)
        if _named_list(old if old is not None else []) and _named_list(new if new is not None else []):
            olds = {o["name"]: o for o in old or []}
            news = {o["name"]: o for o in new or []}
            for name in sorted(set(olds) | set(news)):
                if name not in news:
                    out.append({"op": "remove", "kind": kind, "name": name, "fields": []})
                elif name not in olds:
                    out.append({"op": "add", "kind": kind, "name": name, "fields": []})
                else:
                    entry = _change(kind, name, olds[name], news[name])
                    if entry is not None:
                        out.append(entry)
        elif old != new:
            if isinstance(old, dict) and isinstance(new, dict):
                entry = _change(kind, "", old, new)
                if entry is not None:
                    out.append(entry)
            else:
                out.append(
                    {"op": "change", "kind": kind, "name": "", "fields": [kind],
                     "values": {kind: {"from": old, "to": new}}}
                )  # fmt: skip
    return out


def describe(change: Mapping[str, Any]) -> str:
    """One line for a person: ``+ switches ext``, ``- ports web01-eth0``,
    ``~ ports web01-eth0: vlan.access_vlan_id null -> 20; vlan.mode "Untagged" -> "Access"``."""
    sign = {"add": "+", "remove": "-", "change": "~"}[change["op"]]
    what = f"{change['kind']} {change['name']}".rstrip()
    values: Mapping[str, Any] = change.get("values") or {}
    if change["op"] != "change" or not values:
        fields = f" ({', '.join(change['fields'])})" if change.get("fields") else ""
        return f"{sign} {what}{fields}"
    parts = [
        f"{path} {_short(a)} -> {_short(b)}"
        for f, v in values.items()
        for path, a, b in _leaves(f, v["from"], v["to"])
    ]
    return f"{sign} {what}: " + "; ".join(parts)


def _leaves(path: str, old: Any, new: Any) -> list[tuple[str, Any, Any]]:
    """Where two values differ, down to the changed leaves of nested objects (``vlan.access_vlan_id``)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [leaf for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)
                for leaf in _leaves(f"{path}.{k}", old.get(k), new.get(k))]  # fmt: skip
    return [(path, old, new)]


def _change(kind: str, name: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> Change | None:
    fields = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if not fields:
        return None
    values = {f: {"from": old.get(f), "to": new.get(f)} for f in fields}
    return {"op": "change", "kind": kind, "name": name, "fields": fields, "values": values}


def _named_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(o, dict) and "name" in o for o in v)


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"
