"""Python side of uring-conform: validate, assemble, compare, tabulate and export reports.

Run as ``PYTHONPATH=tools /usr/bin/python3 -m uring_conform <command> --help``.
"""
