"""The Grafana dashboard we ship (docs/grafana/pyvswitch.json, issue 14 item 1): valid JSON Grafana imports,
every query valid PromQL (promtool, with Grafana's variables filled in) and naming only metrics /metrics
exports, so a renamed metric cannot leave a dashboard panel silently empty."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pyvswitch.daemon.metrics import Metrics
from tests.unit.test_metrics import full

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "pyvswitch.json"
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_info")


def exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["panels"]
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


def exported() -> set[str]:
    metrics = Metrics(full())
    metrics.observe("GET", "/v1/switches", time.perf_counter())  # a labelled histogram shows once observed
    text = metrics.render().decode()
    names = set()
    for fam in text_string_to_metric_families(text):
        names.add(fam.name)
        names.update(s.name for s in fam.samples)
    return names


def filled(expr: str) -> str:
    return expr.replace("$__rate_interval", "1m").replace("$switch", ".*")


def test_every_query_names_exported_metrics() -> None:
    names = exported()
    for expr in exprs():
        used = set(re.findall(r"pyvswitch_[a-z0-9_]+", expr))
        assert used, expr
        assert used <= names, (expr, used - names)


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian's prometheus) is not installed"
)
def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:q{i}", "expr": filled(e)} for i, e in enumerate(exprs())
    ]}]}  # fmt: skip
    path = tmp_path / "rules.json"  # YAML is a superset of JSON: promtool reads it as is
    path.write_text(json.dumps(rules))
    res = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
