"""pyvswitch: an extensible layer-2 virtual switch for Linux with Hyper-V host-networking semantics."""

__version__ = "0.1.0"
