"""Each Hyper-V cmdlet's Linux-style equivalent, and the defaults its parameters take when omitted.

For the generated cmdlet reference (``pyvswitch.docsgen``, issue 15): ``EQUIVALENTS`` maps every cmdlet name of
``cli.cmdlets.CMDLETS`` to the ``pyvswitch VERB ...`` command line that does the same (several separated by
`` ; ``), or to ``—`` (optionally followed by a note) where no verb does. ``DEFAULTS`` gives, per (cmdlet,
parameter), what an omitted parameter means, as the family's code or the daemon applies it. Data only: nothing
at run time reads it, and a test checks that every cmdlet has an entry and that every verb path and ``--option``
named here exists in the click tree (tests/unit/test_cmdlet_equivalents.py).
"""

from __future__ import annotations

NONE = "—"

EQUIVALENTS: dict[str, str] = {
    # switches and VMs (cli/vmswitch.py)
    "New-VMSwitch": "pyvswitch switch add NAME --uplink IF ; pyvswitch switch add NAME --type internal",
    "Get-VMSwitch": "pyvswitch switch list ; pyvswitch switch show NAME",
    "Set-VMSwitch": "pyvswitch extension order SWITCH NAMES... (for -Extensions; no verb for the other settings)",
    "Remove-VMSwitch": "pyvswitch switch del NAME",
    "New-VM": "pyvswitch vm add NAME --switch SW ; pyvswitch vm add NAME --switch SW --kind qemu --memory MIB",
    "Get-VM": "pyvswitch vm list ; pyvswitch vm show NAME",
    "Remove-VM": "pyvswitch vm del NAME",
    # adapters (cli/vmadapter.py)
    "Add-VMNetworkAdapter": NONE + " (pyvswitch vm add gives a VM its first adapter NAME-eth0)",
    "Get-VMNetworkAdapter": "pyvswitch port list --vm VM ; pyvswitch port show NAME",
    "Remove-VMNetworkAdapter": "pyvswitch port del NAME",
    "Connect-VMNetworkAdapter": "pyvswitch port set NAME --switch SW",
    "Disconnect-VMNetworkAdapter": "pyvswitch port set NAME --disconnect",
    "Set-VMNetworkAdapter": (
        "pyvswitch port set NAME --mac-spoofing --dhcp-guard --router-guard --storm-limit PPS "
        "--max-bandwidth BIT/S --min-weight N --min-absolute BIT/S --virtual-subnet-id VSID ; "
        "pyvswitch sriov weight PORT WEIGHT"
    ),
    "Set-VMNetworkAdapterVlan": "pyvswitch port set NAME --vlan SPEC",
    "Get-VMNetworkAdapterVlan": "pyvswitch port list ; pyvswitch port show NAME",
    # ACLs (cli/vmacl.py)
    "Add-VMNetworkAdapterAcl": "pyvswitch port acl add PORT --action ACTION --direction DIR --remote-ip ADDR",
    "Get-VMNetworkAdapterAcl": "pyvswitch port acl list PORT",
    "Remove-VMNetworkAdapterAcl": "pyvswitch port acl del PORT --action ACTION --direction DIR",
    "Add-VMNetworkAdapterExtendedAcl": (
        "pyvswitch port xacl add PORT --action ACTION --direction DIR --weight N --protocol tcp --local-port P"
    ),
    "Get-VMNetworkAdapterExtendedAcl": "pyvswitch port xacl list PORT",
    "Remove-VMNetworkAdapterExtendedAcl": "pyvswitch port xacl del PORT --weight N",
    # extensions (cli/vmextension.py)
    "Get-VMSystemSwitchExtension": "pyvswitch extension list",
    "Get-VMSwitchExtension": "pyvswitch extension show SWITCH",
    "Enable-VMSwitchExtension": "pyvswitch extension enable SWITCH NAMES...",
    "Disable-VMSwitchExtension": "pyvswitch extension disable SWITCH NAMES...",
    # NetEvent capture sessions (cli/netevent.py): the Linux verbs define and start a capture in one command
    "New-NetEventSession": "pyvswitch capture start FILE --max-bytes SIZE",
    "Get-NetEventSession": "pyvswitch capture list ; pyvswitch capture show ID",
    "Start-NetEventSession": "pyvswitch capture start FILE",
    "Stop-NetEventSession": "pyvswitch capture stop ID",
    "Remove-NetEventSession": NONE
    + " (a capture stopped with pyvswitch capture stop leaves nothing to remove)",
    "Add-NetEventPacketCaptureProvider": (
        "pyvswitch capture start FILE --direction both --snaplen 128 --ethertype ipv4 --ip ADDR --protocol tcp "
        "--mac MAC"
    ),
    "Remove-NetEventPacketCaptureProvider": NONE,
    "Add-NetEventVmSwitch": NONE + " (pyvswitch capture start FILE --port PORT names ports, not switches)",
    "Add-NetEventVmNetworkAdapter": "pyvswitch capture start FILE --port PORT",
    # SR-IOV (cli/sriov.py)
    "Enable-NetAdapterSriov": "pyvswitch sriov enable ADAPTER --vfs N",
    "Disable-NetAdapterSriov": "pyvswitch sriov disable ADAPTER",
    "Set-NetAdapterSriov": "pyvswitch sriov set ADAPTER --vfs N",
    "Get-NetAdapterSriov": "pyvswitch sriov show ADAPTER",
    "Get-NetAdapterSriovVf": "pyvswitch sriov show ; pyvswitch sriov port PORT",
    # live migration (cli/migrate.py)
    "Move-VM": "pyvswitch migrate VM --to HOST",
    # teams (cli/lbfo.py)
    "New-NetLbfoTeam": "pyvswitch team add NAME --member IF --member IF --mode lacp --lb dynamic --lacp-timer fast",
    "Get-NetLbfoTeam": "pyvswitch team list ; pyvswitch team show NAME",
    "Set-NetLbfoTeam": "pyvswitch team set NAME --mode MODE --lb ALGORITHM --lacp-timer TIMER",
    "Remove-NetLbfoTeam": "pyvswitch team del NAME",
    "Add-NetLbfoTeamMember": "pyvswitch team member add NAME INTERFACE --standby",
    "Get-NetLbfoTeamMember": "pyvswitch team show NAME",
    "Set-NetLbfoTeamMember": "pyvswitch team member set NAME INTERFACE --standby",
    "Remove-NetLbfoTeamMember": "pyvswitch team member del NAME INTERFACE",
    "Add-NetLbfoTeamNic": "pyvswitch team nic add NAME --vlan ID --name IF",
    "Get-NetLbfoTeamNic": "pyvswitch team nic list NAME",
    "Set-NetLbfoTeamNic": "pyvswitch team nic set NAME --vlan ID ; pyvswitch team nic set NAME --default",
    "Remove-NetLbfoTeamNic": "pyvswitch team nic del NAME --vlan ID",
    # host QoS and DCB (cli/netqos.py)
    "New-NetQosPolicy": "pyvswitch qos policy add NAME --template smb --min-weight N --throttle BIT/S --dscp N",
    "Get-NetQosPolicy": "pyvswitch qos policy list",
    "Set-NetQosPolicy": NONE + " (pyvswitch qos policy del NAME, then add)",
    "Remove-NetQosPolicy": "pyvswitch qos policy del NAME",
    "New-NetQosTrafficClass": "pyvswitch qos class add NAME --priority P --algorithm ets --bandwidth PCT",
    "Get-NetQosTrafficClass": "pyvswitch qos class list",
    "Set-NetQosTrafficClass": NONE + " (pyvswitch qos class del NAME, then add)",
    "Remove-NetQosTrafficClass": "pyvswitch qos class del NAME",
    "Enable-NetQosFlowControl": "pyvswitch qos pfc on PRIO...",
    "Disable-NetQosFlowControl": "pyvswitch qos pfc off PRIO...",
    "Get-NetQosFlowControl": "pyvswitch qos class list",
    "Set-NetQosDcbxSetting": "pyvswitch qos dcbx --not-willing ; pyvswitch qos dcbx --willing",
    "Get-NetQosDcbxSetting": NONE,
    "Enable-NetAdapterQos": "pyvswitch qos adapter enable NAME",
    "Disable-NetAdapterQos": "pyvswitch qos adapter disable NAME",
    "Get-NetAdapterQos": "pyvswitch qos adapter list",
    # network virtualization in a cluster (cli/vnet.py)
    "Get-NetVirtualizationLookupRecord": "pyvswitch vnet records --vsid VSID",
    "New-NetVirtualizationLookupRecord": (
        "pyvswitch vnet record-add VSID CUSTOMER_ADDRESS --mac MAC --provider-address IP"
    ),
    "Remove-NetVirtualizationLookupRecord": "pyvswitch vnet record-del VSID CUSTOMER_ADDRESS",
    "Get-NetVirtualizationCustomerRoute": "pyvswitch vnet routes --rdid RDID --vsid VSID",
    "New-NetVirtualizationCustomerRoute": "pyvswitch vnet route-add RDID VSID PREFIX --next-hop IP --metric N",
    "Set-NetVirtualizationCustomerRoute": "pyvswitch vnet route-add RDID VSID PREFIX --metric N",
    "Remove-NetVirtualizationCustomerRoute": "pyvswitch vnet route-del RDID VSID PREFIX",
    "Get-NetVirtualizationProviderAddress": "pyvswitch vnet hosts",
}

# (cmdlet, parameter) -> what omitting the parameter means (only where that is a value, not "not changed").
DEFAULTS: dict[tuple[str, str], str] = {
    ("New-VMSwitch", "SwitchType"): "External with -NetAdapterName; otherwise required",
    ("New-VMSwitch", "AllowManagementOS"): "$true (an External switch gets the host vNIC named after it)",
    ("New-VMSwitch", "MinimumBandwidthMode"): "Default (= Weight)",
    ("New-VMSwitch", "EnableIov"): "$false",
    ("New-VM", "Kind"): "Namespace (Qemu when -MemoryStartupBytes is given)",
    ("New-VM", "MemoryStartupBytes"): "256MB (a QEMU guest)",
    ("New-NetLbfoTeam", "TeamingMode"): "SwitchIndependent",
    ("New-NetLbfoTeam", "LoadBalancingAlgorithm"): "Dynamic",
    ("New-NetLbfoTeam", "LacpTimer"): "Slow",
    ("Add-NetLbfoTeamMember", "AdministrativeMode"): "Active",
    ("Add-NetLbfoTeamNic", "Name"): "<team>.<vlan>",
    ("New-NetEventSession", "LocalFilePath"): "$TMPDIR/NetTrace.pcapng",
    ("New-NetEventSession", "MaxFileSize"): "250 (MB; 0 = no limit)",
    ("Add-NetEventPacketCaptureProvider", "CaptureType"): "Physical",
    ("Add-NetEventPacketCaptureProvider", "TruncationLength"): "128 (0 = whole frames)",
    ("Enable-NetAdapterSriov", "NumVFs"): "8",
    ("New-NetQosPolicy", "Precedence"): "127",
    ("New-NetVirtualizationLookupRecord", "Rule"): "TranslationMethodEncap",
    ("Set-NetQosDcbxSetting", "Willing"): "$true until set (Windows' default)",
}
