"""The fuzz tests' tally, printed at the end of the run (issue 14: say how many, how long)."""

from __future__ import annotations

from tests.fuzz.tally import OUTCOMES, SECONDS, TRIED


def pytest_terminal_summary(terminalreporter) -> None:
    if not TRIED:
        return
    parts = ", ".join(f"{name} {count:,}" for name, count in sorted(TRIED.items()))
    terminalreporter.write_sep(
        "-",
        f"fuzz: {sum(TRIED.values()):,} generated records tried in {sum(SECONDS.values()):.1f} s",
    )
    terminalreporter.write_line(f"fuzz records by test: {parts}")
    if OUTCOMES:
        outcomes = ", ".join(f"{name} {count:,}" for name, count in OUTCOMES.most_common())
        terminalreporter.write_line(f"fuzz engine outcomes (one partition): {outcomes}")
