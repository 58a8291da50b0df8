"""End-to-end ingest on the embedded defaults vs. the bare embedder on the same chunks.

Scenarios (each in a fresh child process with its own JANUS_HOME, so one
scenario's memory and caches never flatter or burden another):

* ``wiki``: the English Wikipedia sample dump shipped with gensim's test
  data (106 real articles in one ``.xml.bz2``), entity extraction off;
* ``wiki+entities``: the same articles with the default spaCy extractor on;
* ``synthetic``: N small ``.txt``/``.md`` documents (default 10,000) of
  made-up but realistic sentences, generated from a fixed seed, entities off.

For each: the first ingest (wall time, documents/s, chunks/s); then the
bare baseline, which embeds exactly the chunk texts the ingest stored
(read back from the ledger, in ledger order, in batches of the embedder's
batch size, as the pipeline sends them) with the very same embedder
instance; the ratio is end-to-end chunks/s ÷ bare chunks/s (goal ≥ 0.85
with entities off, ≥ 0.5 with the default extractor on). ``wiki+entities``
stores exactly the chunks ``wiki`` stored, so it reuses that baseline when
the chunk digests match (``--separate-baselines`` measures it again). Then
the unchanged corpus is ingested again (goal ≤ 2 % of the first ingest).

Also printed: the seconds the pipeline spent inside ``embedder.embed``
during the ingest ("embed busy"), which tells whether a low ratio comes from
a slower embedder (contention) or from time spent outside embedding; CPU
seconds of the process for the ingest and the baseline (fairer than wall
time on a shared machine); and the child's peak RSS (``VmHWM``) at the end
of the first ingest.

The machine is usually shared: wall-clock ratios move with other load
(ONNX Runtime's two intra-op threads stall whenever any other thread takes
a core), so read the ratio together with the CPU ratio.

Run: ``python -m benchmarks.ingest [--quick] [--articles N] [--synthetic N]
[--skip-entities] [--scenarios wiki,synthetic] [--separate-baselines] [--json]``.
``--quick`` (20 articles, 1,000 notes) takes a few minutes; the default run
(106 articles, 10,000 notes) about a quarter of an hour on two idle cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCENARIOS = ("wiki", "wiki+entities", "synthetic")
GOALS = {"wiki": 0.85, "wiki+entities": 0.5, "synthetic": 0.85}
REINGEST_GOAL = 0.02
QUICK_ARTICLES = 20
QUICK_SYNTHETIC = 1_000
DEFAULT_SYNTHETIC = 10_000
SEED = 20240611
TENANT = "bench"


@dataclass
class Result:
    """What one scenario measured (all rates per wall-clock second)."""

    scenario: str
    corpus: str
    entities: bool
    files: int = 0
    documents: int = 0
    chunks: int = 0
    distinct_chunk_texts: int = 0
    chunks_digest: str = ""
    ingest_s: float = 0.0
    ingest_cpu_s: float = 0.0
    embed_busy_s: float = 0.0
    bare_s: float = 0.0
    bare_cpu_s: float = 0.0
    bare_shared_from: str | None = None
    reingest_s: float = 0.0
    reingest_unchanged: bool = False
    rss_before_mb: float = 0.0
    peak_rss_mb: float = 0.0
    peak_rss_total_mb: float = 0.0
    goal: float = 0.85
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def docs_s(self) -> float:
        return self.documents / self.ingest_s if self.ingest_s else 0.0

    @property
    def chunks_s(self) -> float:
        return self.chunks / self.ingest_s if self.ingest_s else 0.0

    @property
    def bare_chunks_s(self) -> float:
        return self.chunks / self.bare_s if self.bare_s else 0.0

    @property
    def ratio(self) -> float:
        return self.chunks_s / self.bare_chunks_s if self.bare_chunks_s else float("nan")

    @property
    def cpu_ratio(self) -> float:
        """Bare CPU seconds ÷ ingest CPU seconds: the ratio with machine noise factored out."""
        return self.bare_cpu_s / self.ingest_cpu_s if self.ingest_cpu_s else float("nan")

    @property
    def reingest_fraction(self) -> float:
        return self.reingest_s / self.ingest_s if self.ingest_s else float("nan")

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("docs_s", "chunks_s", "bare_chunks_s", "ratio", "cpu_ratio"):
            data[name] = getattr(self, name)
        data["ratio_met"] = self.ratio >= self.goal
        data["reingest_fraction"] = self.reingest_fraction
        data["reingest_goal"] = REINGEST_GOAL
        data["reingest_met"] = self.reingest_fraction <= REINGEST_GOAL
        return data


# -- corpora ------------------------------------------------------------------


def wikipedia_dump() -> Path:
    """The Wikipedia sample dump inside the installed gensim package (as quickstart finds it)."""
    from janus_stack.cli.quickstart import sample_corpus  # noqa: PLC0415

    return sample_corpus()


_NAMES = (
    "Maria Keller", "James Okafor", "Li Wei", "Sofia Andersson", "Rahul Mehta", "Ana Costa",
    "Thomas Brandt", "Yuki Tanaka", "Fatima Haddad", "Peter Novak", "Elena Petrova",
    "David Moreau", "Grace Mensah", "Lucas Silva", "Hannah Schmidt", "Omar Farouk",
)  # fmt: skip
_ORGS = (
    "the city council", "Northwind Logistics", "the regional health board", "Acme Robotics",
    "the university library", "Harbor Energy", "the water authority", "Bluefin Analytics",
    "the transport ministry", "Crescent Bank", "the school district", "Greenfield Farms",
)  # fmt: skip
_PLACES = (
    "Rotterdam", "Lyon", "Porto", "Kraków", "Nairobi", "Osaka", "Vancouver", "Bergen",
    "Valencia", "Tallinn", "Adelaide", "Montreal", "Leipzig", "Cork", "Bologna", "Tampere",
)  # fmt: skip
_TOPICS = (
    "the annual budget", "a new cycling network", "the quarterly sales figures",
    "the data retention policy", "a pilot for electric buses", "the flood defence plan",
    "the hiring freeze", "a customer satisfaction survey", "the warehouse expansion",
    "the migration to the new billing system", "a noise complaint procedure",
    "the library opening hours", "the supplier contract", "a heat pump subsidy",
    "the incident response runbook", "the spring maintenance schedule",
)  # fmt: skip
_VERBS = (
    "approved", "reviewed", "postponed", "announced", "rejected", "discussed", "published",
    "questioned", "extended", "simplified", "audited", "presented",
)  # fmt: skip
_REASONS = (
    "after a long debate", "because costs had risen by {n} percent",
    "following complaints from {n} residents", "to meet the deadline of {month} {day}",
    "after an audit found {n} open issues", "since demand grew faster than expected",
    "although the forecast was uncertain", "once the legal review was finished",
)  # fmt: skip
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
_FOLLOW_UPS = (
    "{name} will report back to {org} in {month}.",
    "The next meeting takes place in {place} on {month} {day}.",
    "A summary was sent to {n} stakeholders, including {name}.",
    "Open questions remain about the cost of {topic}.",
    "{name} asked for a written comparison with the plan used in {place}.",
    "The decision affects roughly {n} people in {place}.",
    "According to {name}, the first results are expected within {n} weeks.",
    "Minutes were taken by {name} and approved without changes.",
)  # fmt: skip


def _fill(template: str, rng: random.Random) -> str:
    return template.format(
        name=rng.choice(_NAMES),
        org=rng.choice(_ORGS),
        place=rng.choice(_PLACES),
        topic=rng.choice(_TOPICS),
        month=rng.choice(_MONTHS),
        day=rng.randint(1, 28),
        n=rng.randint(2, 480),
    )


def _sentence(rng: random.Random) -> str:
    if rng.random() < 0.45:
        return _fill(rng.choice(_FOLLOW_UPS), rng)
    org = rng.choice(_ORGS)
    subject = rng.choice((rng.choice(_NAMES), org[0].upper() + org[1:]))
    reason = _fill(rng.choice(_REASONS), rng)
    where = f" in {rng.choice(_PLACES)}" if rng.random() < 0.4 else ""
    return f"{subject} {rng.choice(_VERBS)} {rng.choice(_TOPICS)}{where} {reason}."


def synthetic_corpus(root: Path, count: int, seed: int = SEED) -> list[Path]:
    """``count`` small notes of 2-6 sentences (~30-130 words, one chunk each), .txt and .md."""
    rng = random.Random(seed)
    files: list[Path] = []
    for i in range(count):
        folder = root / f"{i // 1000:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        topic = rng.choice(_TOPICS)
        title = f"Note {i:05d}: {topic[0].upper()}{topic[1:]} ({rng.choice(_PLACES)})"
        body = " ".join(_sentence(rng) for _ in range(rng.randint(2, 5)))
        if i % 2:
            path = folder / f"note-{i:05d}.md"
            action = _fill(rng.choice(_FOLLOW_UPS), rng)
            text = f"# {title}\n\n{body}\n\n- {action}\n"
        else:
            path = folder / f"note-{i:05d}.txt"
            text = f"{title}\n\n{body}\n"
        path.write_text(text, encoding="utf-8")
        files.append(path)
    return files


# -- the measurement (runs in a child process) ----------------------------------


def _status_kb(field_name: str) -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(f"{field_name}:"):
                return float(line.split()[1])
    return float("nan")


class _Timed:
    """Wraps a bound method and adds up the wall time spent inside it."""

    def __init__(self, call: Callable[..., Any]) -> None:
        self.call = call
        self.seconds = 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.call(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def _log(message: str) -> None:
    print(f"[ingest-bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def measure(
    scenario: str,
    articles: int | None,
    synthetic: int,
    workdir: Path,
    shared_bare: dict[str, Any] | None = None,
) -> Result:
    """Run one scenario in this process and return what it measured.

    ``shared_bare`` is an earlier scenario's bare baseline (its chunk digest,
    wall and CPU seconds, name): used instead of measuring again when this
    scenario stored exactly the same chunk texts.
    """
    from sqlalchemy import select  # noqa: PLC0415

    from janus_stack.config import load_settings  # noqa: PLC0415
    from janus_stack.context import Janus  # noqa: PLC0415
    from janus_stack.ingest.pipeline import IngestOptions, Ingestor  # noqa: PLC0415
    from janus_stack.ledger.models import Chunk  # noqa: PLC0415

    entities = scenario == "wiki+entities"
    home = workdir / "home"
    home.mkdir()
    if scenario == "synthetic":
        files = synthetic_corpus(workdir / "corpus", synthetic)
        corpus = f"synthetic: {synthetic:,} notes (.txt/.md), seed {SEED}"
        max_documents = None
    else:
        files = [wikipedia_dump()]
        max_documents = articles
        corpus = f"Wikipedia sample, {'all' if articles is None else articles} articles"
    result = Result(scenario=scenario, corpus=corpus, entities=entities, goal=GOALS[scenario])
    result.files = len(files)
    # An explicit home, no environment, a working directory without janus.toml: the
    # embedded defaults and nothing from the user's configuration.
    settings = load_settings({"home": str(home)}, environ={}, cwd=home)
    options = IngestOptions(entities=entities, max_documents=max_documents)
    with Janus(settings) as janus:
        embedder = janus.embedder  # opened (model loaded) before the clock starts
        timed = _Timed(embedder.embed)
        embedder.embed = timed  # type: ignore[method-assign]
        result.rss_before_mb = _status_kb("VmRSS") / 1024
        _log(f"{scenario}: first ingest of {corpus}")
        wall, cpu = time.perf_counter(), time.process_time()
        report = Ingestor(janus, embedder, options).ingest(files, tenant=TENANT)
        result.ingest_s = time.perf_counter() - wall
        result.ingest_cpu_s = time.process_time() - cpu
        result.peak_rss_mb = _status_kb("VmHWM") / 1024
        result.embed_busy_s = timed.seconds
        embedder.embed = timed.call  # type: ignore[method-assign]
        summary = report.as_dict()["summary"]
        result.documents, result.chunks = summary["documents"], summary["chunks"]
        if report.failed:
            result.notes.append(f"{len(report.failed)} files failed: {report.failed[0].error}")
        _log(
            f"{scenario}: {result.documents} documents, {result.chunks} chunks in "
            f"{result.ingest_s:.1f} s; bare embedder on the same chunks"
        )

        with janus.ledger.session() as session:
            texts = list(
                session.scalars(
                    select(Chunk.text)
                    .where(Chunk.tenant_id == TENANT)
                    .order_by(Chunk.version_id, Chunk.ordinal)
                )
            )
        if len(texts) != result.chunks:
            result.notes.append(f"ledger holds {len(texts)} chunks, the report {result.chunks}")
        result.distinct_chunk_texts = len(set(texts))
        result.chunks_digest = hashlib.sha256("\0".join(texts).encode()).hexdigest()
        result.chunks = len(texts)
        if shared_bare and shared_bare["chunks_digest"] == result.chunks_digest:
            result.bare_s, result.bare_cpu_s = shared_bare["bare_s"], shared_bare["bare_cpu_s"]
            result.bare_shared_from = shared_bare["scenario"]
            _log(f"{scenario}: same chunks as {result.bare_shared_from}: its bare baseline reused")
        else:
            # The best a bare caller could do with these texts: batches of similar
            # length, as the pipeline builds them (it sorts by token count).
            batch = embedder.batch_size
            ordered = sorted(texts, key=lambda text: embedder.count_tokens([text])[0])
            wall, cpu = time.perf_counter(), time.process_time()
            for start in range(0, len(ordered), batch):
                embedder.embed(ordered[start : start + batch])
            result.bare_s = time.perf_counter() - wall
            result.bare_cpu_s = time.process_time() - cpu

        _log(f"{scenario}: re-ingest of the unchanged corpus")
        wall = time.perf_counter()
        again = Ingestor(janus, embedder, options).ingest(files, tenant=TENANT)
        result.reingest_s = time.perf_counter() - wall
        again_summary = again.as_dict()["summary"]
        result.reingest_unchanged = (
            again_summary.get("unchanged", 0) == len(files) and again_summary["chunks"] == 0
        )
        if not result.reingest_unchanged:
            result.notes.append(f"re-ingest was not a no-op: {again_summary}")
    result.peak_rss_total_mb = _status_kb("VmHWM") / 1024
    return result


def _child(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="janus-bench-ingest-") as workdir:
        shared = json.loads(args.child_bare) if args.child_bare else None
        result = measure(args.child, args.articles, args.synthetic, Path(workdir), shared)
    Path(args.child_out).write_text(json.dumps(result.as_dict()), encoding="utf-8")
    return 0


# -- the driver -----------------------------------------------------------------


def _run_scenario(
    scenario: str, args: argparse.Namespace, shared_bare: Result | None = None
) -> Result:
    """Run ``scenario`` in a fresh interpreter and read back its result."""
    with tempfile.TemporaryDirectory(prefix="janus-bench-ingest-out-") as out:
        out_file = Path(out) / "result.json"
        command = [
            sys.executable,
            "-m",
            "benchmarks.ingest",
            "--child",
            scenario,
            "--child-out",
            str(out_file),
            "--synthetic",
            str(args.synthetic),
        ]
        if args.articles is not None:
            command += ["--articles", str(args.articles)]
        if shared_bare is not None and not shared_bare.error:
            keys = ("scenario", "chunks_digest", "bare_s", "bare_cpu_s")
            command += ["--child-bare", json.dumps({k: getattr(shared_bare, k) for k in keys})]
        root = Path(__file__).resolve().parent.parent
        completed = subprocess.run(command, cwd=root, check=False)
        if completed.returncode != 0 or not out_file.exists():
            failed = Result(scenario=scenario, corpus="?", entities=scenario == "wiki+entities")
            failed.error = f"child exited with status {completed.returncode}"
            return failed
        data = json.loads(out_file.read_text(encoding="utf-8"))
    known = set(Result.__dataclass_fields__)
    return Result(**{key: value for key, value in data.items() if key in known})


def _fmt(value: float, digits: int = 1) -> str:
    return "—" if value != value else f"{value:,.{digits}f}"  # NaN → dash


def _verdict(text: str, met: bool) -> str:
    return f"[green]{text} met[/]" if met else f"[red]{text} NOT met[/]"


def _print_table(results: Sequence[Result]) -> None:
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    console = Console()
    if not console.is_terminal:
        console.width = 200
    table = Table(title="Janus ingest on the embedded defaults (end-to-end vs. bare embedder)")
    columns = (
        "scenario", "docs", "chunks", "ingest s", "docs/s", "chunks/s", "bare chunks/s",
        "ratio (goal)", "CPU ratio", "embed busy", "re-ingest s", "re-ingest % (≤2)",
        "peak RSS MB",
    )  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for r in results:
        if r.error:
            table.add_row(r.scenario, *["—"] * (len(columns) - 2), f"[red]{r.error}[/]")
            continue
        ratio_cell = _verdict(f"{r.ratio:.2f} (≥{r.goal})", r.ratio >= r.goal)
        re_cell = _verdict(f"{100 * r.reingest_fraction:.2f}", r.reingest_fraction <= REINGEST_GOAL)
        busy = f"{r.embed_busy_s:,.0f} s ({100 * r.embed_busy_s / r.ingest_s:.0f}%)"
        table.add_row(
            r.scenario,
            f"{r.documents:,}",
            f"{r.chunks:,}",
            _fmt(r.ingest_s),
            _fmt(r.docs_s, 2),
            _fmt(r.chunks_s),
            _fmt(r.bare_chunks_s),
            ratio_cell,
            _fmt(r.cpu_ratio, 2),
            busy,
            _fmt(r.reingest_s, 2),
            re_cell,
            f"{_fmt(r.peak_rss_mb, 0)} ({_fmt(r.rss_before_mb, 0)} before)",
        )
    console.print(table)
    for r in results:
        notes = list(r.notes)
        if r.bare_shared_from:
            notes.append(f"bare baseline shared with {r.bare_shared_from} (identical chunk texts)")
        extra = f"; {'; '.join(notes)}" if notes else ""
        console.print(
            f"{r.scenario}: {r.corpus}; {r.distinct_chunk_texts:,} distinct chunk texts; "
            f"CPU s ingest {r.ingest_cpu_s:,.1f} vs bare {r.bare_cpu_s:,.1f}; "
            f"in-pipeline embed rate {_fmt(r.chunks / r.embed_busy_s if r.embed_busy_s else 0)}"
            f" chunks/s; peak RSS of the whole child {_fmt(r.peak_rss_total_mb, 0)} MB{extra}",
            highlight=False,
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ingest",
        description="End-to-end ingest throughput vs. the bare embedder, re-ingest time, peak RSS.",
    )
    parser.add_argument("--articles", type=int, help="Wikipedia articles to ingest (default all)")
    parser.add_argument(
        "--synthetic",
        type=int,
        default=None,
        help=f"synthetic small documents (default {DEFAULT_SYNTHETIC:,})",
    )
    parser.add_argument(
        "--skip-entities", action="store_true", help="skip the wiki+entities scenario"
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of {', '.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: {QUICK_ARTICLES} articles, {QUICK_SYNTHETIC:,} synthetic documents",
    )
    parser.add_argument(
        "--separate-baselines",
        action="store_true",
        help="measure the bare baseline of wiki+entities too, not reuse wiki's (same chunks)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--json-out", type=Path, help="also write the JSON results to this file")
    parser.add_argument("--child", choices=SCENARIOS, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    parser.add_argument("--child-bare", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.quick:
        args.articles = args.articles or QUICK_ARTICLES
        args.synthetic = args.synthetic or QUICK_SYNTHETIC
    if args.synthetic is None:
        args.synthetic = DEFAULT_SYNTHETIC
    if args.child:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        return _child(args)
    chosen = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        _parser().error(f"unknown scenario(s): {', '.join(unknown)}")
    if args.skip_entities:
        chosen = [name for name in chosen if name != "wiki+entities"]
    started = time.perf_counter()
    results: list[Result] = []
    for name in chosen:
        # Scenario b stores the very chunks scenario a stored: embedding them bare a
        # second time would add minutes and measure nothing new (the digest is checked).
        shared = None
        if name == "wiki+entities" and not args.separate_baselines:
            shared = next((r for r in results if r.scenario == "wiki"), None)
        results.append(_run_scenario(name, args, shared))
    _log(f"all scenarios done in {time.perf_counter() - started:,.0f} s")
    data = json.dumps([r.as_dict() for r in results], indent=2)
    if args.json_out:
        args.json_out.write_text(data + "\n", encoding="utf-8")
    if args.json:
        print(data)
    else:
        _print_table(results)
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
