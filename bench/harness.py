"""What every benchmark scenario shares: its environment, its results, and the table.

A scenario is a module in ``bench/`` with ``def run(env: BenchEnv) -> list[Result]``. It
measures mailstead and, in the same run, a baseline doing comparable work, because these
machines are noisy: the ratio is what we compare across runs, not the absolute numbers.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailstead.testing.server import ServerThread, SubprocessServer

if TYPE_CHECKING:
    from mailstead.store.sql.sqlite import SQLiteStore


@dataclass(frozen=True)
class Result:
    """One row of the table. ``ratio`` > 1 always means mailstead did better."""

    scenario: str
    case: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    higher_is_better: bool = True
    notes: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0 or self.value == 0:
            return None
        return self.value / self.baseline if self.higher_is_better else self.baseline / self.value


@dataclass
class BenchEnv:
    """Scratch space and switches for one run."""

    workdir: Path
    quick: bool = False
    peers: bool = False
    _counter: int = field(default=0, repr=False)

    def scratch(self, name: str) -> Path:
        """A fresh directory for one measurement."""
        self._counter += 1
        path = self.workdir / f"{self._counter:03d}-{name}"
        path.mkdir(parents=True)
        return path

    def scale(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    @contextmanager
    def server(self, config: Mapping[str, Any] | None = None) -> Iterator[ServerThread]:
        """The real server (serve.py wiring) on the embedded default, in a temp dir."""
        bench_config = {"log": {"level": "warning"}}
        from mailstead.testing.server import deep_merge

        with ServerThread(self.scratch("server"), deep_merge(bench_config, config or {})) as srv:
            yield srv

    @contextmanager
    def server_process(self, config: Mapping[str, Any] | None = None
                       ) -> Iterator[SubprocessServer]:
        """The real server as its own process, so client load does not share its GIL."""
        bench_config = {"log": {"level": "warning"}}
        from mailstead.testing.server import deep_merge

        with SubprocessServer(self.scratch("server"), deep_merge(bench_config, config or {})
                              ) as srv:
            yield srv


def bench_store(data_dir: Path) -> SQLiteStore:
    """A store on ``data_dir`` made as ``serve`` makes it (structure, full-text index row and
    sort keys written with each body), so a scenario that fills the store before the server
    starts leaves the server nothing to catch up on: the index's start-up pass over
    unindexed mail once ran beside the measurement and took a third of the event loop."""
    from mailstead.cli.serve import parse_structure, text_indexer
    from mailstead.config.schema import StoreSettings
    from mailstead.imap.sort import stored_sort_keys
    from mailstead.store.sql.sqlite import SQLiteStore

    return SQLiteStore(
        data_dir,
        parse=parse_structure,
        indexer=text_indexer(StoreSettings().index_text_limit),
        sort_keys=stored_sort_keys,
    )


def percentile(samples: Sequence[float], pct: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def format_table(results: Sequence[Result]) -> str:
    headers = ("scenario", "case", "mailstead", "unit", "baseline", "baseline is", "ratio",
               "notes")
    rows = [
        (r.scenario, r.case, _fmt(r.value), r.unit, _fmt(r.baseline), r.baseline_name,
         "-" if r.ratio is None else f"{r.ratio:.2f}x", r.notes)
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    out.append("")
    out.append("ratio > 1 means mailstead did better than the baseline measured in the same run.")
    return "\n".join(out)


@contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="mailstead-bench-") as tmp:
        yield Path(tmp)
