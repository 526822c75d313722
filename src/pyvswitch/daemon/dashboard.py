"""The web dashboard (issue 14 item 2): a page pyvswitchd serves on 127.0.0.1, behind a token, when asked
(``pyvswitch dashboard`` prints its URL): the topology (switches, their ports and VMs, teams, cluster hosts),
live per-port rates and drops as plots, QoS shares against what is configured, team and LACP state, the newest
events of the log, and a what-if trace form.

Server-rendered: the page is one Jinja2 template; live numbers come from ``/snapshot``, which the page polls every
second as htmx's ``every 1s`` would (JSON, with rates computed here from the counters' deltas since the previous
poll), and are drawn by a few lines of script into SVG polylines, so nothing is fetched from a CDN and no
plotting library is needed. Polling rather than server-sent events: a stream never lets a headless browser's
page go idle, and the system test screenshots the page in headless Chromium. The listener is its own
uvicorn server on a thread, bound to 127.0.0.1 (an ephemeral port unless one is given); every request must
carry the token (``?token=`` once, then a cookie), so another local user who finds the port sees nothing.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import jinja2
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel

from pyvswitch.daemon import logs
from pyvswitch.daemon.service import Service

log = logging.getLogger(__name__)

COOKIE = "pyvswitch_dashboard"
PERIOD_S = 1.0
HISTORY = 60  # samples a plot keeps (the script's)


class WhatIfBody(BaseModel):
    port: str
    frame: str


def _rates(
    now: float, counters: dict[str, Any], before: tuple[float, dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """Per port: frames and bits per second since the previous snapshot, and drops in all."""
    prev_t, prev = before if before is not None else (now, {})
    dt = max(now - prev_t, 1e-6)
    out = []
    for sw, s in sorted((counters.get("switches") or {}).items()):
        for name, p in sorted((s.get("ports") or {}).items()):
            key = f"{sw}/{name}"
            old = prev.get(key, p)
            drops = sum((p.get("drops") or {}).values()) + sum((p.get("port_drops") or {}).values())
            out.append({
                "switch": sw, "port": name,
                "rx_frames": p.get("rx_frames", 0), "tx_frames": p.get("tx_frames", 0), "drops": drops,
                "rx_pps": round((p.get("rx_frames", 0) - old.get("rx_frames", 0)) / dt, 1),
                "tx_pps": round((p.get("tx_frames", 0) - old.get("tx_frames", 0)) / dt, 1),
                "rx_bps": round((p.get("rx_bytes", 0) - old.get("rx_bytes", 0)) * 8 / dt),
                "tx_bps": round((p.get("tx_bytes", 0) - old.get("tx_bytes", 0)) * 8 / dt),
            })  # fmt: skip
    return out


def _by_key(counters: dict[str, Any]) -> dict[str, Any]:
    return {
        f"{sw}/{name}": p
        for sw, s in (counters.get("switches") or {}).items()
        for name, p in (s.get("ports") or {}).items()
    }


def _team_view(team: Any) -> dict[str, Any]:
    """A team's members as the page shows them: status, reason, LACP mux state."""
    status: dict[str, Any] = team.get("status") or {}
    lacp = {p.get("member"): p.get("status") for p in status.get("lacp") or []}
    members = [
        {"name": m.get("name"), "status": m.get("operational_status"), "reason": m.get("failure_reason"),
         "lacp": lacp.get(m.get("name"), "")}
        for m in status.get("members") or []
    ]  # fmt: skip
    return {"name": team.get("name"), "members": members, "failovers": status.get("failovers", 0)}


def _event_view(e: dict[str, Any]) -> dict[str, Any]:
    return {"ts": str(e.get("ts", ""))[11:19], "level": e.get("level"), "event": e.get("event", ""),
            "message": e.get("message")}  # fmt: skip


class Dashboard:
    """The dashboard's server: started on demand, one per daemon, stopped with it."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.token = secrets.token_urlsafe(18)
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # The previous poll's counters (rates are since then), and its lock (start/stop hold the other).
        self._last: tuple[float, dict[str, Any]] | None = None
        self._poll_lock = threading.Lock()

    @property
    def url(self) -> str | None:
        return f"http://127.0.0.1:{self.port}/?token={self.token}" if self.port is not None else None

    def start(self, port: int = 0) -> str:
        """Serve on 127.0.0.1:``port`` (0: any free one); the URL with the token. Already running: its URL."""
        with self._lock:
            if self._server is not None and self.url is not None:
                return self.url
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(16)
            self.port = int(sock.getsockname()[1])
            config = uvicorn.Config(self.app(), log_config=None, log_level="warning", access_log=False,
                                    lifespan="off")  # fmt: skip
            server = uvicorn.Server(config)
            self._server = server
            self._thread = threading.Thread(
                target=server.run, kwargs={"sockets": [sock]}, name="pyvswitch-dashboard", daemon=True
            )
            self._thread.start()
            log.info("dashboard on http://127.0.0.1:%d/", self.port,
                     extra={"event": "dashboard.started", "fields": {"port": self.port}})  # fmt: skip
            assert self.url is not None
            return self.url

    def stop(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.should_exit = True
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = self._thread = None
            self.port = None

    # ---- what the page shows ----

    def topology(self) -> dict[str, Any]:
        cfg = self.service.config
        switches = []
        for sw in cfg.switches:
            ports = [
                {"name": p.name, "kind": p.kind.value, "vm": p.vm or "", "mac": p.mac or "",
                 "vlan": p.vlan.mode.value, "vsid": p.virtual_subnet_id or ""}
                for p in cfg.ports if p.switch == sw.name
            ]  # fmt: skip
            switches.append({"name": sw.name, "type": sw.type.value, "ports": ports})
        teams = [
            {"name": t.name, "members": list(t.members), "mode": t.teaming_mode.value} for t in cfg.teams
        ]
        hosts: list[dict[str, Any]] = []
        cluster = self.service.cluster
        hosts_of = getattr(cluster, "hosts", None)
        if callable(hosts_of):
            with contextlib.suppress(Exception):  # an unreachable etcd: the page without its hosts
                hosts = [{"name": h.name, "provider_address": h.provider_address} for h in hosts_of()]
        return {"switches": switches, "teams": teams, "vms": [v.name for v in cfg.vms], "hosts": hosts}

    def snapshot(
        self, before: tuple[float, dict[str, Any]] | None
    ) -> tuple[dict[str, Any], tuple[float, dict[str, Any]]]:
        """One live update, and what the next one computes its rates from."""
        svc = self.service
        now = time.monotonic()
        counters: dict[str, Any] = dict(svc.counters())
        qos = []
        for sw in svc.config.switches:
            with contextlib.suppress(Exception):
                st = svc.qos_status(sw.name)
                for port, p in (st.get("ports") or {}).items():  # type: ignore[attr-defined]
                    qos.append({"switch": sw.name, "port": port, "rate_bps": p.get("rate_bps", 0),
                                "share": p.get("bandwidth_percentage"), "weight": p.get("minimum_bandwidth_weight"),
                                "maximum": p.get("maximum_bandwidth")})  # fmt: skip
        teams = []
        with contextlib.suppress(Exception):
            for t in svc.teams():
                teams.append(_team_view(t))
        health: dict[str, Any] = dict(svc.forwarding())
        events = logs.read_events(svc.state_dir, limit=8)
        data = {
            "time": time.strftime("%H:%M:%S"),
            "ports": _rates(now, counters, before),
            "qos": qos,
            "teams": teams,
            "health": {"state": health.get("state"), "problems": health.get("problems", [])},
            "busy_s": counters.get("busy_s"),
            "events": [_event_view(e) for e in events],
        }
        return data, (now, _by_key(counters))

    # ---- the app ----

    def app(self) -> FastAPI:
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
        page = jinja2.Environment(autoescape=True).from_string(PAGE)
        token = self.token

        @app.middleware("http")
        async def _token(request: Request, call_next: Callable[[Request], Any]) -> Response:
            given = request.query_params.get("token") or request.cookies.get(COOKIE)
            if not given or not secrets.compare_digest(given, token):
                return Response("a token is needed: the URL pyvswitch dashboard prints\n", status_code=403)
            response: Response = await call_next(request)
            if request.query_params.get("token"):
                response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
            return response

        @app.get("/", response_class=HTMLResponse)
        def index() -> str:
            return page.render(topology=self.topology(), history=HISTORY, period_ms=int(PERIOD_S * 1000))

        @app.get("/snapshot")
        def snapshot() -> JSONResponse:
            with self._poll_lock:
                data, self._last = self.snapshot(self._last)
            return JSONResponse(data)

        @app.post("/whatif")
        def what_if(body: WhatIfBody) -> JSONResponse:
            try:
                rec = self.service.what_if(body.port, body.frame)
            except Exception as exc:  # a bad description or an unknown port: said on the page
                return JSONResponse({"tree": f"error: {exc}", "verdict": "error"}, status_code=400)
            return JSONResponse({"tree": rec.get("tree"), "verdict": rec.get("verdict")})

        return app


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pyvswitch</title>
<style>
 body{font:14px system-ui,sans-serif;margin:16px;background:#fafafa;color:#222}
 h1{font-size:20px;margin:0 0 8px} h2{font-size:16px;margin:18px 0 6px}
 table{border-collapse:collapse;background:#fff} td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
 th{background:#eee} .num{text-align:right;font-variant-numeric:tabular-nums} .bad{color:#b00} .ok{color:#070}
 .grid{display:grid;grid-template-columns:1fr 1fr;gap:16px} pre{background:#fff;border:1px solid #ddd;padding:8px}
 svg{background:#fff;border:1px solid #ddd} .muted{color:#777}
</style></head><body>
<h1>pyvswitch <span id="health" class="muted">connecting…</span> <span id="clock" class="muted"></span></h1>
<div class="grid"><div>
<h2>Switches and ports</h2>
{% for sw in topology.switches %}
<table><tr><th colspan="8">{{ sw.name }} ({{ sw.type }})</th></tr>
<tr><th>port</th><th>kind</th><th>VM</th><th>VLAN</th><th class="num">rx/s</th><th class="num">tx/s</th>
<th class="num">drops</th><th>rx frames/s, last {{ history }} s</th></tr>
{% for p in sw.ports %}
<tr data-port="{{ sw.name }}/{{ p.name }}"><td>{{ p.name }}</td><td>{{ p.kind }}</td><td>{{ p.vm }}</td>
<td>{{ p.vlan }}{% if p.vsid %} VSID {{ p.vsid }}{% endif %}</td><td class="num rx">-</td><td class="num tx">-</td>
<td class="num drops">-</td><td><svg width="180" height="28"><polyline fill="none" stroke="#36c" points=""/></svg></td></tr>
{% endfor %}</table>
{% endfor %}
{% if topology.teams %}<h2>Teams</h2><table id="teams"><tr><th>team</th><th>member</th><th>status</th><th>reason</th>
<th>LACP</th></tr></table>{% endif %}
{% if topology.hosts %}<h2>Cluster hosts</h2><table>{% for h in topology.hosts %}<tr><td>{{ h.name }}</td>
<td>{{ h.provider_address }}</td></tr>{% endfor %}</table>{% endif %}
</div><div>
<h2>QoS: measured rate and guaranteed share</h2>
<table id="qos"><tr><th>switch</th><th>port</th><th class="num">rate</th><th class="num">share</th>
<th class="num">weight</th><th class="num">max</th></tr></table>
<h2>Events</h2><table id="events"><tr><th>time</th><th>level</th><th>event</th><th>message</th></tr></table>
<h2>What-if trace</h2>
<form id="whatif"><input name="port" placeholder="port or VM" size="14">
<input name="frame" placeholder="dst=MAC ip=A>B tcp dport=80" size="40"> <button>trace</button></form>
<pre id="tree" class="muted">the frame, through a copy of the switch: nothing is sent</pre>
</div></div>
<script>
const hist = {}, H = {{ history }};
function fmt(n){ if(n==null) return "-"; return n>=1e9?(n/1e9).toFixed(2)+"G":n>=1e6?(n/1e6).toFixed(2)+"M":n>=1e3?(n/1e3).toFixed(1)+"k":String(Math.round(n)); }
function rows(id, items, cells){ const t=document.getElementById(id); if(!t) return;
  while(t.rows.length>1) t.deleteRow(1);
  for(const it of items){ const r=t.insertRow(); for(const c of cells(it)){ const d=r.insertCell(); d.textContent=c; } } }
function update(s){
  document.getElementById("clock").textContent = s.time;
  const h = document.getElementById("health");
  h.textContent = s.health.state === "ok" ? "forwarding ok" : "degraded: " + s.health.problems.join("; ");
  h.className = s.health.state === "ok" ? "ok" : "bad";
  for(const p of s.ports){
    const tr = document.querySelector(`tr[data-port="${CSS.escape(p.switch+"/"+p.port)}"]`); if(!tr) continue;
    tr.querySelector(".rx").textContent = fmt(p.rx_pps); tr.querySelector(".tx").textContent = fmt(p.tx_pps);
    tr.querySelector(".drops").textContent = fmt(p.drops);
    tr.dataset.rxFrames = p.rx_frames; tr.dataset.rxPps = p.rx_pps;
    const k = p.switch+"/"+p.port, a = (hist[k] = hist[k] || []); a.push(p.rx_pps); if(a.length>H) a.shift();
    const max = Math.max(1, ...a);
    tr.querySelector("polyline").setAttribute("points", a.map((v,i)=>`${(i*180/(H-1)).toFixed(1)},${(26-v*24/max).toFixed(1)}`).join(" "));
  }
  rows("qos", s.qos, q=>[q.switch, q.port, fmt(q.rate_bps)+"bit/s", q.share==null?"-":q.share+"%", q.weight||"-", q.maximum?fmt(q.maximum)+"bit/s":"-"]);
  rows("teams", s.teams.flatMap(t=>t.members.map(m=>[t.name, m.name, m.status, m.reason, m.lacp])), r=>r);
  rows("events", s.events.slice().reverse(), e=>[e.ts, e.level, e.event, e.message]);
}
async function poll(){
  try { const r = await fetch("snapshot"); if(!r.ok) throw new Error(r.status); update(await r.json()); }
  catch(e){ const h=document.getElementById("health"); h.textContent="disconnected"; h.className="bad"; }
  setTimeout(poll, {{ period_ms }}); }
poll();
document.getElementById("whatif").onsubmit = async ev => { ev.preventDefault();
  const f = new FormData(ev.target);
  const r = await fetch("whatif", {method:"POST", headers:{"Content-Type":"application/json"},
    body: JSON.stringify({port: f.get("port"), frame: f.get("frame")})});
  document.getElementById("tree").textContent = (await r.json()).tree; };
</script></body></html>
"""
