"""Devices: OS endpoints that move frames (AF_PACKET rings, TAP, pcap files, memory). No policy here."""
