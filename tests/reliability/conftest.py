"""The closing summary of ``make reliability``: requests sent, faults injected, bad inputs tried, lost."""

from __future__ import annotations

from reliability import tally


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    entries = tally.records()
    if entries:
        terminalreporter.section("litefaas reliability")
        for line in tally.summary_lines(entries):
            terminalreporter.write_line(line)
