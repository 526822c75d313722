"""The cmdlet framework, the bottom floor of the Hyper-V cmdlet front end.

``framework`` (parameters, the PowerShell-style binder, arguments, session, errors), ``output`` (Format-Table,
Format-List, ``--json``, help) and ``objects`` (Hyper-V's names for the daemon's ports and how a cmdlet
selects them). Families (``cli.vmswitch``, ``cli.vmadapter``, ``cli.vmacl``, ``cli.vmextension``,
``cli.lbfo``, ``cli.netqos``, ``cli.netevent``, ``cli.sriov``, ``cli.migrate``) stand on it and
``cli.cmdlets`` gathers them into the table; nothing here imports a family.
"""
