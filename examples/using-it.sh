#!/usr/bin/env bash
# The README's "Using it" block, line for line (tests/system/test_readme_example.py runs this file end to end and
# checks that the README shows exactly the lines below the "set" line, each after a "# " prompt).
#
# As root, on a machine with eight spare NICs: NIC1=enp1s0 NIC2=... bash examples/using-it.sh
# It expects an untagged LAN 10.0.0.0/24 behind NIC1, NIC7 and NIC8 with a host 10.0.0.1 that answers, the
# same LAN's VLAN 10 (10.0.10.1 answers), and a switch whose LACP bonds are NIC2+NIC3+NIC4 and NIC5+NIC6.
# Without such a machine: python -m pyvswitch.lab.sandbox examples/using-it.sh builds exactly that from
# namespaces, veths and Open vSwitch, runs this script in it, and leaves nothing behind.
set -euo pipefail
NIC1=${NIC1:-eth1} NIC2=${NIC2:-eth2} NIC3=${NIC3:-eth3} NIC4=${NIC4:-eth4} NIC5=${NIC5:-eth5} NIC6=${NIC6:-eth6} NIC7=${NIC7:-eth7} NIC8=${NIC8:-eth8}
export PYVSWITCH_SOCKET=${PYVSWITCH_SOCKET:-/run/pyvswitch/pyvswitchd.sock}    # where the CLI finds the daemon
pyvswitchd --socket "$PYVSWITCH_SOCKET" --state-dir "${STATE_DIR:-/var/lib/pyvswitch}" &   # the daemon
until pyvswitch status >/dev/null 2>&1; do sleep 0.2; done                   # ready: it answers
pyvswitch switch add ext --uplink "$NIC1"           # External switch; a host vNIC 'ext' comes with it
pyvswitch vm add web01 --switch ext --ip 10.0.0.10/24
pyvswitch vm exec web01 -- ping -c1 -w5 10.0.0.1      # out of the uplink to the LAN host
pyvswitch port set ext --ip 10.0.0.5/24 ; ping -c1 -w5 10.0.0.10    # the host vNIC 'ext' (ip link: its pvh... interface)
pyvswitch vm add web02 --switch ext --ip 10.0.10.11/24 --vlan access:10
pyvswitch vm exec web02 -- ping -c1 -w5 10.0.10.1     # VLAN 10 leaves the uplink tagged; the LAN's VLAN 10 answers
pyvswitch fdb show ext ; pyvswitch counters
pyvswitch New-VMSwitch -Name lab -SwitchType Private        # the same, as a Hyper-V admin types it
pyvswitch vm add db01 --switch lab --ip 10.0.20.20/24 ; pyvswitch vm add db02 --switch lab --ip 10.0.20.21/24
pyvswitch Set-VMNetworkAdapterVlan -VMName db01 -Access -VlanId 20
pyvswitch vm exec db02 -- sh -c '! ping -c1 -W1 10.0.20.20'    # db01 on VLAN 20, db02 untagged: no way
pyvswitch Set-VMNetworkAdapterVlan -VMName db02 -Access -VlanId 20 ; pyvswitch vm exec db02 -- ping -c1 -w5 10.0.20.20
pyvswitch Get-VMNetworkAdapterVlan
pyvswitch team add t1 --member "$NIC2" --member "$NIC3" --mode lacp --lacp-timer fast
pyvswitch switch add ext2 --uplink t1 ; pyvswitch vm add app01 --switch ext2 --ip 10.0.0.12/24
timeout 30 pyvswitch vm exec app01 -- sh -c 'until ping -c1 -W1 10.0.0.1; do sleep 1; done'   # once LACP is up (a few s)
pyvswitch team show t1                              # LACP actor/partner per member
pyvswitch Set-NetLbfoTeam t1 -LoadBalancingAlgorithm HyperVPort ; pyvswitch Add-NetLbfoTeamMember "$NIC4" t1 -AdministrativeMode Standby
pyvswitch New-NetLbfoTeam -Name t2 -TeamMembers "$NIC5,$NIC6" -TeamingMode Lacp   # no switch on it: host interface 't2'
pyvswitch Add-NetLbfoTeamNic -Team t2 -VlanID 10 ; ip addr add 10.0.10.5/24 dev t2.10   # VLAN 10, untagged here
timeout 30 sh -c 'until ping -c1 -W1 10.0.10.1; do sleep 1; done'   # from the host, out of team t2 tagged 10
pyvswitch vm add web03 --switch ext --ip 10.0.0.13/24 --mac 02:00:00:00:00:13
pyvswitch trace web01 'dst=02:00:00:00:00:13 ip=10.0.0.10>10.0.0.13 tcp dport=80'   # what-if: every stage; exit 1 if it would die
pyvswitch extension enable ext pyvswitch-sflow ; pyvswitch extension set ext pyvswitch-sflow collectors=10.0.0.9 sampling_rate=400
pyvswitch switch add q --uplink "$NIC7" --link-speed 1G --min-bandwidth-mode absolute   # QoS: capacity 1 Gbit/s
pyvswitch vm add bulk01 --switch q ; pyvswitch port set bulk01-eth0 --min-absolute 300M --max-bandwidth 500M
pyvswitch Set-VMNetworkAdapter -VMName web01 -MinimumBandwidthWeight 5 ; pyvswitch qos show ext   # sent, drops, rate, share vs configured
pyvswitch New-NetQosTrafficClass SMB -Priority 3 -Algorithm ETS -BandwidthPercentage 60 ; pyvswitch Enable-NetQosFlowControl -Priority 3
pyvswitch New-VMSwitch -Name fast -NetAdapterName "$NIC8" -EnableIov '$true' ; pyvswitch sriov enable "$NIC8" --vfs 8   # SR-IOV
pyvswitch vm add db03 --switch fast --ip 10.0.0.30/24 ; pyvswitch Set-VMNetworkAdapter -VMName db03 -IovWeight 50
pyvswitch sriov show ; pyvswitch vm exec db03 -- ping -c1 -w5 10.0.0.1     # db03: VF 0 (policies bypassed)
pyvswitch vm add web04 --kind qemu --switch ext --ip 10.0.0.40/24   # a real VM: QEMU, virtio-net on a TAP port
pyvswitch vm exec web04 -- ip addr show eth0 ; pyvswitch vm exec web04 -- ping -c1 -w10 10.0.0.10
pyvswitch lab up --hosts 2 ; pyvswitch --host hostA vm add mig01 --switch ext --ip 10.90.0.10/24
pyvswitch --host hostA migrate mig01 --to hostB     # or: Move-VM -Name mig01 -DestinationHost hostB
pyvswitch --host hostB vm exec mig01 -- ping -c1 -w5 10.90.0.100     # the lab's LAN host
pyvswitch lab up --name c --hosts 2 --cluster   # + a provider network with a 3-member etcd; hosts join it
pyvswitch --host c/hostA vm add vs01 --switch ext --ip 10.0.5.11/24 ; pyvswitch --host c/hostA Set-VMNetworkAdapter -VMName vs01 -VirtualSubnetId 5001
pyvswitch --host c/hostB vm add vs02 --switch ext --ip 10.0.5.12/24 ; pyvswitch --host c/hostB Set-VMNetworkAdapter -VMName vs02 -VirtualSubnetId 5001
pyvswitch --host c/hostB vm exec vs02 -- ping -c1 -w10 10.0.5.11    # across hosts, through the VXLAN tunnels
pyvswitch --host c/hostB vnet records ; pyvswitch --host c/hostB Get-NetVirtualizationLookupRecord   # both hosts' records
pyvswitch --host c/hostA vnet route-add "{5EC0A000-0000-4000-8000-000000000001}" 5001 10.0.5.0/24   # routing domain; gateway 10.0.5.1
pyvswitch --host c/hostA vm exec vs01 -- ping -c1 -w5 10.0.5.1     # the default gateway: answered by hostA itself
