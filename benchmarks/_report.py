"""Appending a benchmark's results to BENCHMARKS.md, one format for every script."""

from __future__ import annotations

import sys


def append_report(output, *, title: str, script: str, argv, notes, header: str, rows) -> None:
    """Append one benchmark section to ``output`` (BENCHMARKS.md): title with the start time, the exact command
    (``OMP_WAIT_POLICY`` included), the load average, ``notes`` as bullets, then a table of ``rows``."""
    import datetime
    import os

    started = datetime.datetime.now().isoformat(timespec="seconds")
    command = f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')} python benchmarks/{script}"
    command += "".join(" " + a for a in (argv if argv is not None else sys.argv[1:]))
    n_cols = header.count("|") - 1
    lines = [
        f"\n## {title}, {started}\n",
        f"- command: `{command}`",
        f"- load average (1/5/15 min) after: {os.getloadavg()}",
        *[f"- {note}" for note in notes],
        "",
        header,
        "|" + "---|" * n_cols,
        *rows,
        "",
    ]
    with open(output, "a", encoding="utf-8") as f:
        f.write("\n".join(lines))
    print(f"appended to {output}")
