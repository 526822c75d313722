"""Shared fixtures. System tests need root and real namespaces; they skip clearly when not root."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pyvswitch.testing.netns import NetnsPool, netns_pool

# System tests whose assertions depend on rates, timings or a quiet CPU (throughput ratios, failover and
# migration gaps, loss at a given rate, QoS shares): `make test` runs them alone, after the rest has run
# concurrently (pytest-xdist), so the suite stays under 15 minutes on 2 cores without making them flaky.
SERIAL_MODULES = {
    "test_dataplane_guards.py",
    "test_demo_cluster.py",  # a migration gap and a lease expiry, both measured
    "test_demo_iov.py",
    "test_demo_qos.py",
    "test_demo_team.py",
    "test_harness.py",
    "test_hitless_restart.py",
    "test_iov.py",
    "test_lacp_ovs.py",
    "test_lacp_tshark.py",
    "test_migration.py",
    "test_qos.py",
    "test_resource_limits.py",  # a flood: "the other VMs are not starved" is judged within a 2 s ping
    "test_rfc_bench.py",
    "test_ring_resync.py",
    "test_steering.py",
    "test_storm_limit.py",
    "test_team.py",
    "test_team_interop.py",
    "test_team_nics.py",
    "test_cpu_wait.py",  # pins itself and two hogs to one CPU: another worker there would blur the shares
}

# Tests of those modules that measure nothing (they assert states: a VF assigned, a scene's cleanup after a
# failure, a veto honoured), so they run with the concurrent tier: the serial tier is the longer half of
# `make test` (10 min of 22 on a fresh clone on 2026-12-07), and these were 70 s of it.
CONCURRENT_IN_SERIAL_MODULES = {
    "test_demo_cluster.py::test_cluster_scene_cleans_up_after_a_failure_half_way",
    "test_demo_iov.py::test_iov_scene_cleans_up_after_a_failure_half_way",
    "test_demo_qos.py::test_a_share_off_by_more_than_10_percent_fails_the_scene",
    "test_hitless_restart.py::test_sigint_stops_the_forwarder_and_a_new_daemon_starts_one",
    "test_iov.py::test_vf_to_vf_hairpins_in_the_kernel",
    "test_iov.py::test_scarce_vfs_weight_and_reassignment",
    "test_iov.py::test_tagged_port_stays_on_the_switch",
    "test_iov.py::test_uplink_carrier_down_falls_back_and_returns",
    "test_iov.py::test_sriov_enablement_survives_kill9_and_can_be_disabled",
    "test_iov.py::test_vf_filters_left_by_a_crash_are_cleared_at_start",
    "test_lacp_tshark.py::test_tshark_reads_our_pdus",
    "test_migration.py::test_vetoing_extension_aborts_and_vm_keeps_working_on_source",
    "test_qos.py::test_switch_with_dcb_adapter_can_be_removed",
    "test_steering.py::test_steering_on_applies_to_new_vms",
    "test_team_nics.py::test_vlan_and_default_team_interfaces_carry_traffic_to_the_physical_lan",
    "test_dataplane_guards.py::test_forwarding_outlives_an_extension_calling_sys_exit_and_health_says_so",
}


# The concurrent tier's longest modules, longest first (seconds per module on a fresh clone, 2026-12-07): they are
# handed to the workers first (`make test` passes --no-loadscope-reorder, so xdist keeps this order instead of
# ordering modules by their number of tests). A 120 s module that started last kept one worker busy for two minutes
# after the other two had finished; longest-first leaves the short modules to fill the ends.
LONGEST_FIRST = [
    "tests/system/test_qemu_guest.py",  # 177
    "tests/system/test_crash.py",  # 120
    "tests/system/test_migration_faults.py",  # 120
    "tests/system/test_cluster_lab.py",  # 106
    "tests/system/test_forwarding.py",  # 101
    "tests/system/test_readme_example.py",  # 83
    "tests/system/test_security.py",  # 55
    "tests/system/test_iov.py",  # 55
    "tests/system/test_lab_hosts.py",  # 47
    "tests/system/test_firewall.py",  # 30
    "tests/system/test_flow_export.py",  # 30
    "tests/system/test_capture.py",  # 28
    "tests/system/test_what_if.py",  # 27
    "tests/system/test_demo_cluster.py",  # 25
    "tests/system/test_dashboard.py",  # 23
    "tests/system/test_demo_guest.py",  # 22
    "tests/component/test_wheel.py",  # 21
    "tests/fuzz/test_api.py",  # 21
    "tests/system/test_cmdlets.py",  # 20
    "tests/system/test_tracing.py",  # 19
]


def _longest_first(item: pytest.Item) -> int:
    module = item.nodeid.split("::")[0]
    return LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_longest_first)  # stable: each module's tests stay together and in their order
    for item in items:
        # System tests only (and a unit test that times CPU shares): the unit and component modules that share
        # these names run on memory devices and a fake clock, so they need no quiet machine.
        if (
            item.path.name in SERIAL_MODULES
            and ("system" in item.path.parts or item.path.name == "test_cpu_wait.py")
            and f"{item.path.name}::{getattr(item, 'originalname', item.name)}"
            not in CONCURRENT_IN_SERIAL_MODULES
        ):
            item.add_marker(pytest.mark.serial)
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="system tests need root (CI runs as root)")
        for item in items:
            if "system" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def pool() -> Iterator[NetnsPool]:
    """Namespaces and veths that are removed after the test, pass or fail."""
    with netns_pool() as p:
        yield p
