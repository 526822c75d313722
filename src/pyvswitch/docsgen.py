"""The documentation site's generated pages (issue 15): the Hyper-V cmdlet reference from the cmdlet table and
the REST reference from the OpenAPI document, so neither can drift from what the code accepts.

A build tool, not part of pyvswitchd or the CLI (nothing imports it): mkdocs loads this file as a hook
(``hooks:`` in mkdocs.yml), and ``on_files`` adds the pages to the build in memory, so they are never written
into docs/ nor committed. ``python -m pyvswitch.docsgen DIR`` writes them to DIR, to read them without mkdocs.
The OpenAPI document comes from ``create_app`` over a mock service (no daemon, no sockets, nothing fetched).
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mkdocs.config.defaults import MkDocsConfig
    from mkdocs.structure.files import Files

    from pyvswitch.cli.cmdlet.framework import Cmdlet, Param

CMDLET_PAGE = "reference/cmdlets.md"
REST_PAGE = "reference/rest.md"
METHODS = ("get", "put", "post", "patch", "delete", "head", "options")


def cell(text: object) -> str:
    """``text`` safe in a Markdown table cell: no pipe, no HTML, no line break."""
    s = str(text).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(s.split())


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# ---------------------------------------------------------------- cmdlets


def _type_name(p: Param) -> str:
    from pyvswitch.cli.cmdlet.framework import PType

    if p.type is PType.SWITCH:
        return "SwitchParameter"
    return str(p.type.value).rsplit(".", 1)[-1]


def _accepts(p: Param) -> str:
    parts = []
    if p.choices:
        parts.append(", ".join(p.choices))
    if p.range is not None:
        parts.append(f"{p.range[0]}..{p.range[1]}")
    return "; ".join(parts) or "—"


def cmdlet_section(c: Cmdlet, equivalent: str, defaults: Mapping[tuple[str, str], str]) -> list[str]:
    lines = [f"## {c.name} {{#{slug(c.name)}}}", "", cell(c.summary) if c.summary else "", ""]
    from pyvswitch.cli.cmdlet.output import full_syntax
    from pyvswitch.cli.cmdlet.what_if import changes_state

    lines += ["```text", full_syntax(c), "```", ""]
    lines += [f"**Linux-style equivalent:** {_equivalent(equivalent)}", ""]
    if c.params:
        lines += [
            "| Parameter | Type | Position | Mandatory | Accepts | Default | Aliases |",
            "|---|---|---|---|---|---|---|",
        ]
        for p in c.params:
            position = "named" if p.position is None else str(p.position)
            lines.append(
                f"| `-{p.name}` | {_type_name(p)} | {position} | {'yes' if p.mandatory else 'no'} "
                f"| {cell(_accepts(p))} | {cell(defaults.get((c.name, p.name), '—'))} "
                f"| {cell(', '.join('-' + a for a in p.aliases) or '—')} |"
            )
    else:
        lines.append("No parameters.")
    if changes_state(c):
        lines += ["", "Common parameter: `-WhatIf` shows what the line would change (validated by the daemon as a "
                  "dry run) and changes nothing."]  # fmt: skip
    lines.append("")
    if c.notes:
        lines += ["Remarks:", "", "```text", c.notes.rstrip(), "```", ""]
    return lines


def _equivalent(text: str) -> str:
    """An EQUIVALENTS entry in Markdown: each command as code, a note as text."""
    from pyvswitch.cli.cmdlet.equivalents import NONE

    if text.startswith(NONE):
        return cell(text)
    out = []
    for part in text.split(" ; "):
        command, sep, note = part.partition(" (")
        out.append(f"`{command.strip()}`" + (f" ({cell(note)}" if sep else ""))
    return " ; ".join(out)


def cmdlet_reference() -> str:
    """Every cmdlet of ``cli.cmdlets.CMDLETS`` with its syntax, every parameter (type, position, whether
    mandatory, choices or range, default, aliases), its remarks and its Linux-style equivalent."""
    from pyvswitch.cli.cmdlet.equivalents import DEFAULTS, EQUIVALENTS, NONE
    from pyvswitch.cli.cmdlets import CMDLETS

    lines = [
        "# Hyper-V cmdlet reference",
        "",
        "Generated from the cmdlet table (`pyvswitch.cli.cmdlets.CMDLETS`) when the site is built; "
        "`pyvswitch CMDLET -?` prints the same syntax and remarks. Parameter names are case-insensitive and "
        "may be shortened to a unique prefix; a *Position* parameter may be given without its name. "
        "The Linux-style equivalents come from `pyvswitch.cli.cmdlet.equivalents` (— where no verb does "
        "the same). See [CLI and cmdlets](../guide/cli.md) for quoting, `--json`, pipes and `-WhatIf`.",
        "",
        f"{len(CMDLETS)} cmdlets:",
        "",
        "| Cmdlet | Summary | Linux-style equivalent |",
        "|---|---|---|",
    ]
    for c in CMDLETS:
        lines.append(
            f"| [{c.name}](#{slug(c.name)}) | {cell(c.summary)} | {_equivalent(EQUIVALENTS.get(c.name, NONE))} |"
        )
    lines.append("")
    for c in CMDLETS:
        lines += cmdlet_section(c, EQUIVALENTS.get(c.name, NONE), DEFAULTS)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- REST


def openapi_document() -> dict[str, Any]:
    """pyvswitchd's OpenAPI document, from ``create_app`` over a mock service (its state directory a
    temporary one, so building the app leaves nothing behind)."""
    from unittest.mock import MagicMock

    from pyvswitch.daemon.api import create_app

    with tempfile.TemporaryDirectory(prefix="pyvswitch-docs-") as tmp:
        service = MagicMock()
        service.state_dir = Path(tmp)
        return create_app(service).openapi()


def operations(doc: Mapping[str, Any]) -> Iterable[tuple[str, str, Mapping[str, Any]]]:
    """(METHOD, path, operation) of every operation, in the document's order."""
    for path, item in doc.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def group_of(path: str) -> str:
    """The section an operation is listed in: its first tag, else the first path segment after /v1."""
    parts = [p for p in path.split("/") if p]
    if parts and parts[0] == "v1":
        parts = parts[1:]
    return parts[0] if parts else "/"


def type_of(schema: Mapping[str, Any] | None) -> str:
    """A schema as a short Markdown type: links to named schemas, list[...], dict[str, ...], a | b, enums."""
    if not schema:
        return "any"
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return f"[{name}](#schema-{slug(name)})"
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return " \\| ".join(type_of(s) for s in schema[key])
    if "enum" in schema:
        return "one of " + ", ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    kind = schema.get("type")
    if kind == "array":
        return f"list[{type_of(schema.get('items'))}]"
    if kind == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            return f"dict[str, {type_of(extra)}]"
        return "object"
    if isinstance(kind, list):
        return " \\| ".join(str(k) for k in kind)
    text = str(kind or "any")
    if "format" in schema:
        text += f" ({schema['format']})"
    return text


def _content_schema(body: Mapping[str, Any]) -> tuple[str, Mapping[str, Any] | None]:
    for media, spec in (body.get("content") or {}).items():
        return str(media), spec.get("schema")
    return "", None


def operation_section(method: str, path: str, op: Mapping[str, Any]) -> list[str]:
    anchor = slug(f"op {method} {path}")
    lines = [f"### `{method} {path}` {{#{anchor}}}", ""]
    if op.get("summary"):
        lines += [f"**{cell(op['summary'])}**", ""]
    if op.get("description"):
        lines += [_escape_block(str(op["description"])), ""]
    params = op.get("parameters") or []
    if params:
        lines += ["| Parameter | In | Required | Type | Description |", "|---|---|---|---|---|"]
        for p in params:
            schema = p.get("schema") or {}
            text = cell(p.get("description") or schema.get("description") or "")
            if "default" in schema:
                text = f"{text} (default `{schema['default']}`)" if text else f"default `{schema['default']}`"
            lines.append(
                f"| `{p['name']}` | {p.get('in', '')} | {'yes' if p.get('required') else 'no'} "
                f"| {type_of(schema)} | {text} |"
            )
        lines.append("")
    body = op.get("requestBody")
    if body:
        media, schema = _content_schema(body)
        required = "required" if body.get("required") else "optional"
        lines += [f"Request body ({media}, {required}): {type_of(schema)}", ""]
    lines += ["| Status | Description | Body |", "|---|---|---|"]
    for status, resp in (op.get("responses") or {}).items():
        media, schema = _content_schema(resp)
        shown = type_of(schema) if media else "—"
        if media and media != "application/json":
            shown = f"{media}" + (f": {type_of(schema)}" if schema else "")
        lines.append(f"| {status} | {cell(resp.get('description', ''))} | {shown} |")
    lines.append("")
    return lines


def _escape_block(text: str) -> str:
    """An operation's description (a docstring) as Markdown text: no raw HTML."""
    return text.replace("<", "&lt;").replace(">", "&gt;")


def schema_section(name: str, schema: Mapping[str, Any]) -> list[str]:
    lines = [f"### {name} {{#schema-{slug(name)}}}", ""]
    if schema.get("description"):
        lines += [_escape_block(str(schema["description"])), ""]
    props: Mapping[str, Any] = schema.get("properties") or {}
    if props:
        required = set(schema.get("required") or ())
        lines += ["| Field | Type | Required | Default | Description |", "|---|---|---|---|---|"]
        for field, spec in props.items():
            default = f"`{spec['default']}`" if "default" in spec else "—"
            lines.append(
                f"| `{field}` | {type_of(spec)} | {'yes' if field in required else 'no'} | {cell(default)} "
                f"| {cell(spec.get('description', ''))} |"
            )
    else:
        lines.append(f"Type: {type_of(schema)}")
    lines.append("")
    return lines


def rest_reference(doc: Mapping[str, Any] | None = None) -> str:
    """Every operation of the OpenAPI document (method, path, summary, description, parameters, request body,
    responses) grouped by tag or first path segment, then every schema it names."""
    doc = openapi_document() if doc is None else doc
    groups: dict[str, list[tuple[str, str, Mapping[str, Any]]]] = {}
    for method, path, op in operations(doc):
        tags = op.get("tags") or []
        groups.setdefault(str(tags[0]) if tags else group_of(path), []).append((method, path, op))
    count = sum(len(g) for g in groups.values())
    info = doc.get("info", {})
    lines = [
        "# REST API reference",
        "",
        f"Generated from pyvswitchd's OpenAPI document ({info.get('title', '')} {info.get('version', '')}, "
        f"OpenAPI {doc.get('openapi', '')}) when the site is built: {count} operations. The API listens on a "
        "unix socket (default `/run/pyvswitch/pyvswitchd.sock`; `curl --unix-socket "
        "/run/pyvswitch/pyvswitchd.sock http://pyvswitch/v1/switches`), serves this document at "
        "`/openapi.json` and a Swagger UI at `/docs`. A refused request answers "
        '`{"errors": [{"field": ..., "message": ...}]}` with 400 (invalid), 404 (no such object), '
        "409 (conflict) or 413 (body too large); see also [contracts](../contracts.md).",
        "",
        "| Group | Operations |",
        "|---|---|",
    ]
    for group, ops in groups.items():
        lines.append(f"| [{group}](#group-{slug(group)}) | {len(ops)} |")
    lines.append("")
    for group, ops in groups.items():
        lines += [f"## {group} {{#group-{slug(group)}}}", ""]
        lines += ["| Method | Path | Summary |", "|---|---|---|"]
        for method, path, op in ops:
            lines.append(
                f"| {method} | [`{path}`](#{slug(f'op {method} {path}')}) | {cell(op.get('summary', ''))} |"
            )
        lines.append("")
        for method, path, op in ops:
            lines += operation_section(method, path, op)
    schemas: Mapping[str, Any] = doc.get("components", {}).get("schemas", {})
    if schemas:
        lines += ["## Schemas {#schemas}", ""]
        for name in sorted(schemas):
            lines += schema_section(name, schemas[name])
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the hook and the command

PAGES: dict[str, Callable[[], str]] = {CMDLET_PAGE: cmdlet_reference, REST_PAGE: rest_reference}


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """mkdocs hook: add the generated pages to the build (in memory; docs/ is not touched)."""
    from mkdocs.structure.files import File

    for uri, render in PAGES.items():
        files.append(File.generated(config, uri, content=render()))
    return files


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0] if args else "build/docs-generated")
    for uri, render in PAGES.items():
        out = target / uri
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render())
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
