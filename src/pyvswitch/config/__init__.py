"""Desired state: the typed schema, validation that collects every error, and the SQLite store."""
