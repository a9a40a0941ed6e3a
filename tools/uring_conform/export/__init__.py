"""Exports of a report into formats other CI systems read (KCIDB)."""
