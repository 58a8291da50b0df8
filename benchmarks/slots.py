"""Operations/s of every slot backend through Janus vs. the raw client, same run.

Run from the repository root: ``python -m benchmarks.slots [slot ...]``.
The goal is Janus overhead ≤ 15 %, i.e. a ratio ≥ 0.85 on every row.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks._common import BenchRow

SLOTS = ("objects", "vectors", "graph", "queue", "cache")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.slots", description=__doc__)
    parser.add_argument("slots", nargs="*", metavar="SLOT", help=f"any of {', '.join(SLOTS)}")
    chosen = parser.parse_args(argv).slots or list(SLOTS)
    unknown = sorted(set(chosen) - set(SLOTS))
    if unknown:
        parser.error(f"unknown slot(s) {', '.join(unknown)}; choose from {', '.join(SLOTS)}")
    rows: list[BenchRow] = []
    for slot in chosen:
        module = importlib.import_module(f"benchmarks.slot_{slot}")
        with tempfile.TemporaryDirectory(prefix=f"janus-bench-{slot}-") as workdir:
            rows.extend(module.run(Path(workdir)))
    table = Table(title="Janus slots: operations/s, Janus vs. raw client")
    for column in ("slot", "backend", "operation", "batch", "janus ops/s", "raw ops/s", "ratio"):
        table.add_column(
            column, justify="right" if "ops" in column or column in ("batch", "ratio") else "left"
        )
    for row in rows:
        style = "green" if row.ratio >= 0.85 else "red"
        table.add_row(
            row.slot,
            row.backend,
            row.operation,
            str(row.batch),
            f"{row.janus_ops_s:,.0f}",
            f"{row.raw_ops_s:,.0f}",
            f"[{style}]{row.ratio:.2f}[/]",
        )
    Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
