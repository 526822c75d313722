# Two commands on a fresh machine, as root: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
APT_PACKAGES := iperf3 tshark ethtool tcpdump netsniff-ng iproute2 iputils-ping fping openvswitch-switch qemu-system-x86 etcd-server etcd-client
# Without their recommendations: prometheus (tests scrape /metrics with it, not node-exporter and its service) and
# chromium (the dashboard test loads the page headless; none of the desktop it recommends), nfdump (nfcapd is the IPFIX
# collector of the flow export tests; not its service).
APT_PACKAGES_BARE := prometheus chromium nfdump

.PHONY: setup system-deps venv demo test test-quick fuzz lint typecheck unit bench bench-compare bench-rules bench-failover bench-qos bench-migration bench-guests bench-cluster bench-metrics install man docs clean

setup: system-deps venv

# Install only what is missing, so a warm machine skips apt entirely.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@missing=""; for p in $(APT_PACKAGES_BARE); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,bench,lab,docs]'
	touch $@

demo: setup
	$(BIN)/pyvswitch demo

# pyvswitch vs the Linux bridge in one run: TCP, latency, frame-rate searches, then RFC 2544 (loss vs offered load
# per pacing, back-to-back bursts, recovery) and RFC 2889 (address caching and learning, congestion, broadcast,
# 4-port mesh) with the generator's own ceiling; a table, bench.json and bench.png (~15 min; --quick ~2-3 min).
bench: setup
	$(BIN)/pyvswitch bench --json bench.json --plot bench.png

# TCP through pyvswitchd, this tree against an older revision in the same run: make bench-compare OLD=3f490ec
OLD ?= HEAD~1
bench-compare: setup
	$(BIN)/python -m pyvswitch.lab.compare --old $(OLD) --json bench-compare.json

# What ACL and firewall rules cost: 0/10/100/10,000 rules in-process, and TCP through pyvswitchd.
bench-rules: setup
	$(BIN)/python -m pyvswitch.testing.rulebench --real --json bench-rules.json

# Team failover: UDP 10k packets/s through an LACP team to an Open vSwitch bond, the carrying member cut.
bench-failover: setup
	$(BIN)/python -m pyvswitch.lab.failover --reps 5

# Live migration under load: longest gap of 1 ms pings while a VM moves between two lab hosts, TCP flow survival.
bench-migration: setup
	$(BIN)/python -m pyvswitch.lab.migrationbench --runs 5 --json bench-migration.json

# QEMU guests: boot time (median of 5), TCP guest <-> namespace VM / guest <-> guest, pyvswitch vs the bridge;
# then live migration of a guest between two lab hosts under its TCP flow and 1 ms pings (blackout, median of 5).
bench-guests: setup
	$(BIN)/python -m pyvswitch.lab.guestbench --reps 3 --boots 5 --json bench-guests.json
	$(BIN)/python -m pyvswitch.lab.migrationbench --guest --runs 5 --json bench-migration-guest.json

# Cluster scale by simulation (issue 13): 1,000 hosts x 50 VMs in a real 3-member etcd, 20 hosts as real agents;
# then live migration across 3 cluster hosts under 1 ms pings through VXLAN from the third host.
# The man pages pyvswitch(1) and pyvswitchd(8), generated from the CLI and the daemon's parser (committed; a test
# says when they are out of date).
man: venv
	$(BIN)/python -m pyvswitch.cli.manpage src/pyvswitch/data/man

# The documentation site (issue 15): docs/*.md plus the cmdlet and REST references generated at build time from the
# cmdlet table and the OpenAPI document (src/pyvswitch/docsgen.py, an mkdocs hook), offline, into build/site.
# (NO_MKDOCS_2_WARNING: mkdocs-material's banner about its successor, printed on every build, is not about this site.)
docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/site

# The systemd unit for this installation's pyvswitchd (Type=notify, a watchdog fed by the forwarding loop's
# progress, KillMode=process for hitless restarts, /var/lib/pyvswitch and /run/pyvswitch); enabled if systemd runs.
install: setup
	$(BIN)/pyvswitchd --install-service

# What observing costs the data path (issue 14): TCP offloads off, plain vs /metrics scraped 1/s and 10/s vs the sFlow
# agent at 1-in-400, round by round (~9 min); then sFlow's cost per frame in process. Exit 1 if a goal is missed.
bench-metrics: setup
	$(BIN)/python -m pyvswitch.lab.metricsbench --reps 12 --json bench-metrics.json
	$(BIN)/python -m pyvswitch.testing.samplingbench | tee bench-sampling.json

bench-cluster: setup
	$(BIN)/python -m pyvswitch.lab.clusterbench --hosts 1000 --vms 50 --sample 20 --churn 500 --json bench-cluster.json
	$(BIN)/python -m pyvswitch.lab.migrationbench --cluster --runs 5 --json bench-migration-cluster.json
	$(BIN)/python -m pyvswitch.lab.vnetbench --reps 3 --json bench-vnet.json

# QoS scheduler overhead: TCP VM -> LAN through the uplink with QoS off vs on (100G link speed, a weight), and the bridge.
bench-qos: setup
	$(BIN)/python -m pyvswitch.lab.qosbench --reps 3 --json bench-qos.json

lint: venv
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

# Two passes: most tests concurrently (they wait on namespaces, daemons and pings more than they compute), then
# the timing-sensitive system tests (marker "serial", tests/conftest.py) alone on a quiet machine.
# Bytecode for our own modules first: with PYTHONDONTWRITEBYTECODE set (this machine sets it) nothing caches it, and
# every pyvswitch and pyvswitchd process of the suite compiled src/ again (~0.5 s more per daemon start).
# Lint runs beside the concurrent tier (20 s of one CPU, mostly mypy, off the suite's wall time) and fails the
# target before the serial tier starts.
test: setup
	$(BIN)/python -m compileall -q src
	@$(MAKE) --no-print-directory lint > .lint.log 2>&1 & lint=$$!; \
	$(BIN)/pytest -q -p no:cacheprovider -m "not serial" -n 3 --dist loadfile --no-loadscope-reorder --durations=15; tests=$$?; \
	wait $$lint; linted=$$?; cat .lint.log; rm -f .lint.log; \
	if [ $$linted -ne 0 ]; then echo "lint failed"; exit 1; fi; exit $$tests
	$(BIN)/pytest -q -p no:cacheprovider -m serial --durations=15

# Unit, component and the bounded fuzz tests (memory devices, fake clock; no root, no namespaces): under 2 minutes.
test-quick: venv
	$(BIN)/pytest -q -p no:cacheprovider -n 2 tests/unit tests/component tests/fuzz

# The long fuzz run (issue 11): >= 1M frames through a switch on memory devices, >= 10k generated API requests,
# 10k cmdlet lines, 20k examples per grammar; a random seed (PYVSWITCH_FUZZ_SEED=N repeats one). Figures, kernel
# and date in fuzz.json. `make test` runs the same tests bounded (about a minute).
fuzz: venv
	rm -f fuzz.json fuzz.json.lock
	PYVSWITCH_FUZZ=long PYVSWITCH_FUZZ_REPORT=fuzz.json $(BIN)/pytest -q -p no:cacheprovider -n 3 --dist loadfile --timeout 3600 tests/fuzz
	@rm -f fuzz.json.lock; cat fuzz.json

unit: test-quick

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
