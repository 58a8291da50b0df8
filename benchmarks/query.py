"""Query latency on a large index: every search mode vs. the bare vector search, same run.

The index: ``--chunks`` (default 100,000) one-chunk synthetic notes that
name people, organisations and places drawn from a few thousand made-up
names, ingested through the real pipeline (``Ingestor``: ledger, keyword
index, vector index, entity mentions, graph) on the embedded defaults in
a fresh ``JANUS_HOME`` (``--home DIR`` keeps it for the next run). Two
stand-ins keep the build within minutes on two cores — the embedding
model would need about an hour for 100,000 chunks and spaCy half an hour:

* chunk vectors come from feature hashing of the words (384-d, unit
  length; chunking still uses the real tokenizer); exact search costs the
  same whatever the vectors hold;
* entities come from a dictionary extractor that finds the generated
  names (PERSON/ORG/GPE) and links neighbours with ``CO_OCCURS``, like the
  spaCy extractor's window.

Queries are real: the real embedder embeds them and spaCy links their
entities, so each mode's latency includes everything but an LLM. Measured:

* p50/p95 of ``Retriever.search(k=10)`` per mode, one client, and of
  hybrid search with late-interaction re-ranking (``hybrid+rerank``, weight
  0.8), which runs the embedding model over the fused top 20 chunks: an
  option with its own cost, outside the goal below;
* queries/s per mode with 4 concurrent clients (threads sharing one ``Janus``);
* the bare baseline: the vector slot's ``search`` (top 10, tenant filter,
  no payloads, as dense retrieval calls it) with query vectors computed
  beforehand — and the ratio hybrid p95 ÷ bare p95;
* where hybrid time goes (``--profile``): time inside query embedding,
  vector search, keyword search, entity linking, graph search, ledger reads
  (the modes run in threads, so these overlap);
* the load average before and after, since other work on the machine moves
  every number (the ratio, measured in the same run, moves least).

The modes are measured in the order of ``MODES``, so hybrid search meets the
keyword index's cached postings warm (``retrieve/fulltext_topk.py``: kept
until the next write); a term's first two sights cost a ranking of its rows.

Goal: hybrid p95 ≤ 50 ms and at most 3 times the bare vector search.

Run: ``python -m benchmarks.query [--chunks N] [--queries Q] [--home DIR] [--profile]
[--no-rerank] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import statistics
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from janus_stack.config import load_settings
from janus_stack.context import Janus
from janus_stack.ingest.entities import (
    CO_OCCURS,
    ChunkFindings,
    ChunkText,
    EntityExtractor,
    RawMention,
    RawRelation,
)
from janus_stack.ingest.extract import ExtractOptions
from janus_stack.ingest.pipeline import IngestOptions, Ingestor
from janus_stack.ops.inventory import stats
from janus_stack.retrieve import FusionWeights, Retriever
from janus_stack.slots.embeddings import Embedder
from janus_stack.slots.vectors import VectorFilter

TENANT = "bench"
SEED = 11
DOC_NOTES = 24  # notes (paragraphs) per document
DOCS_PER_FILE = 200
CHUNK_CONTENT_TOKENS = 168  # content tokens per chunk the chunker produces here, measured
ENTITY_SHARE = 0.2
# ladybug's default 256 MB buffer pool fills up near 90k chunks of this corpus while
# relations are written ("buffer pool is full"); the build asks for more.
GRAPH_POOL_MB = 1024
MODES = ("dense", "keyword", "graph", "hybrid")
RERANKED = "hybrid+rerank"
RERANK_WEIGHT = 0.8
CLIENTS = 4
P95_GOAL_MS = 50.0
RATIO_GOAL = 3.0

_FIRST = (
    "Maria", "James", "Li", "Sofia", "Rahul", "Ana", "Thomas", "Yuki", "Fatima", "Peter",
    "Elena", "David", "Grace", "Lucas", "Hannah", "Omar", "Ingrid", "Kwame", "Aisha", "Mateo",
    "Nadia", "Jonas", "Priya", "Felix", "Amara", "Henrik", "Chen", "Lucia", "Viktor", "Zara",
    "Tomas", "Leila", "Samuel", "Mei", "Oskar", "Nora", "Diego", "Anika", "Ravi", "Clara",
)  # fmt: skip
_LAST = (
    "Keller", "Okafor", "Wei", "Andersson", "Mehta", "Costa", "Brandt", "Tanaka", "Haddad",
    "Novak", "Petrova", "Moreau", "Mensah", "Silva", "Schmidt", "Farouk", "Larsen", "Durand",
    "Rossi", "Nowak", "Fischer", "Dubois", "Ivanova", "Haas", "Romero", "Lindqvist", "Kowalski",
    "Yilmaz", "Berg", "Sato", "Nakamura", "Papadopoulos", "Horvat", "Jensen", "Santos", "Wagner",
    "Mbeki", "OConnor", "Virtanen", "Dimitrov",
)  # fmt: skip
_ORG_HEAD = (
    "Northwind", "Harbor", "Bluefin", "Crescent", "Greenfield", "Acme", "Silverline",
    "Redwood", "Ironbridge", "Lakeside", "Summit", "Oakridge", "Brightwater", "Falcon",
    "Granite", "Meridian", "Pioneer", "Riverside", "Stonegate", "Westbrook",
)  # fmt: skip
_ORG_TAIL = (
    "Logistics", "Energy", "Analytics", "Bank", "Farms", "Robotics", "Health", "Foundation",
    "Insurance", "Transit",
)  # fmt: skip
_PLACES = (
    "Rotterdam", "Lyon", "Porto", "Krakow", "Nairobi", "Osaka", "Vancouver", "Bergen",
    "Valencia", "Tallinn", "Adelaide", "Montreal", "Leipzig", "Cork", "Bologna", "Tampere",
    "Ghent", "Lisbon", "Seville", "Gdansk", "Malmo", "Aarhus", "Utrecht", "Basel", "Graz",
    "Brno", "Turku", "Bilbao", "Geneva", "Dresden",
)  # fmt: skip
_TOPICS = (
    "budget", "cycling network", "sales figures", "retention policy", "electric buses",
    "flood defence", "hiring freeze", "satisfaction survey", "warehouse expansion",
    "billing system", "noise complaints", "opening hours", "supplier contract",
    "heat pump subsidy", "incident runbook", "maintenance schedule", "solar panels",
    "parking permits", "school meals", "broadband rollout", "tram extension", "tax audit",
    "recycling targets", "data breach", "pension fund", "harbour dredging",
)  # fmt: skip
_VERBS = (
    "approved", "reviewed", "postponed", "announced", "rejected", "discussed", "published",
    "questioned", "extended", "simplified", "audited", "presented",
)  # fmt: skip


def _vocabulary(size: int, rng: random.Random) -> list[str]:
    syllables = ["ka", "lo", "mi", "ren", "to", "sa", "vel", "dor", "an", "is", "qu", "ber"]
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(words)


@dataclass(frozen=True)
class Names:
    people: tuple[str, ...]
    orgs: tuple[str, ...]
    places: tuple[str, ...]

    @classmethod
    def build(cls) -> Names:
        people = tuple(f"{f} {last}" for f in _FIRST for last in _LAST)
        orgs = tuple(f"{h} {t}" for h in _ORG_HEAD for t in _ORG_TAIL)
        return cls(people, orgs, _PLACES)


class Notes:
    """Deterministic one-chunk notes: two to four sentences naming people, orgs, places."""

    def __init__(self, names: Names, seed: int = SEED) -> None:
        self.names = names
        self.rng = random.Random(seed)
        self.words = _vocabulary(5_000, self.rng)
        # Zipf-like word frequencies, as in real text
        self.weights = [1 / (rank + 1) for rank in range(len(self.words))]

    def sentence(self) -> str:
        rng = self.rng
        person, org = rng.choice(self.names.people), rng.choice(self.names.orgs)
        place, topic = rng.choice(self.names.places), rng.choice(_TOPICS)
        filler = " ".join(rng.choices(self.words, self.weights, k=rng.randint(5, 10)))
        form = rng.randrange(3)
        if form == 0:
            return f"{person} {rng.choice(_VERBS)} the {topic} for {org} in {place}, {filler}."
        if form == 1:
            return f"In {place}, {org} {rng.choice(_VERBS)} the {topic} after {person} {filler}."
        return f"{person} met {rng.choice(self.names.people)} about the {topic}; {filler}."

    def note(self, number: int) -> dict[str, str]:
        body = " ".join(self.sentence() for _ in range(self.rng.randint(2, 4)))
        return {"title": f"Note {number:06d}", "text": body}

    def query(self) -> str:
        rng = self.rng
        person, topic = rng.choice(self.names.people), rng.choice(_TOPICS)
        forms = (
            f"What did {person} decide about the {topic}?",
            f"{rng.choice(self.names.orgs)} {topic} in {rng.choice(self.names.places)}",
            f"Who met {person} about the {topic}?",
            f"Why was the {topic} {rng.choice(_VERBS)} by {rng.choice(self.names.orgs)}?",
        )
        return rng.choice(forms)


def write_corpus(folder: Path, chunks: int, notes: Notes, tokens: Embedder) -> list[Path]:
    """JSONL files of multi-chunk documents (``DOC_NOTES`` notes as paragraphs each).

    The number of notes is estimated from their token counts so that the
    chunker cuts about ``chunks`` chunks; the measured count is what is printed.
    """
    folder.mkdir(parents=True, exist_ok=True)
    sample = [notes.note(i)["text"] for i in range(200)]
    per_note = statistics.mean(tokens.count_tokens(sample))
    wanted = math.ceil(chunks * CHUNK_CONTENT_TOKENS / per_note)
    documents = math.ceil(wanted / DOC_NOTES)
    files: list[Path] = []
    lines: list[str] = []
    for number in range(documents):
        body = "\n\n".join(notes.note(number * DOC_NOTES + i)["text"] for i in range(DOC_NOTES))
        lines.append(json.dumps({"title": f"Report {number:06d}", "text": body}))
        if len(lines) == DOCS_PER_FILE or number == documents - 1:
            path = folder / f"reports-{len(files):04d}.jsonl"
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            files.append(path)
            lines = []
    return files


class HashingEmbedder:
    """The real embedder's tokenizer with cheap feature-hashing vectors (see the docstring)."""

    _WORD = re.compile(r"\w+")

    def __init__(self, real: Embedder) -> None:
        self.real = real
        self.dim = real.dim
        self.max_tokens = real.max_tokens
        self.batch_size = 256
        self.model = "bench-hashing-384"

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.real.count_tokens(texts)

    def tokenize_offsets(self, text: str) -> list[tuple[int, int]]:
        return self.real.tokenize_offsets(text)

    def tokenize_counted(self, text: str) -> tuple[list[tuple[int, int]], int]:
        return self.real.tokenize_counted(text)

    def embed(self, texts: Sequence[str]) -> Any:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in self._WORD.findall(text.lower()):
                code = zlib.crc32(word.encode())
                out[row, code % self.dim] += 1.0 if code & 0x8000_0000 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-6)


class DictionaryExtractor(EntityExtractor):
    """Finds the generated names; neighbouring mentions get a ``CO_OCCURS`` relation."""

    def __init__(self, names: Names, share: float = 1.0) -> None:
        super().__init__()
        self.share = share
        pattern = "|".join(
            re.escape(n) for n in sorted({*names.people, *names.orgs, *names.places}, key=len)[::-1]
        )
        self.pattern = re.compile(rf"\b(?:{pattern})\b")
        self.labels = {
            **dict.fromkeys(names.people, "PERSON"),
            **dict.fromkeys(names.orgs, "ORG"),
            **dict.fromkeys(names.places, "GPE"),
        }

    def find_candidates(self, chunks: Sequence[ChunkText]) -> list[ChunkFindings]:
        found = []
        for chunk in chunks:
            if zlib.crc32(chunk.doc_id.encode()) % 1000 >= self.share * 1000:
                found.append(ChunkFindings(chunk))
                continue
            mentions = [
                RawMention(m.start(), m.end(), self.labels[m.group()])
                for m in self.pattern.finditer(chunk.text)
            ]
            relations = [
                RawRelation(i, i + 1, CO_OCCURS, symmetric=True) for i in range(len(mentions) - 1)
            ]
            found.append(ChunkFindings(chunk, mentions, relations))
        return found


@dataclass
class Result:
    chunks: int
    build_s: float | None
    queries: int
    stored: dict[str, Any]
    entity_share: float
    analyzed: bool
    p50_ms: dict[str, float] = field(default_factory=dict)
    p95_ms: dict[str, float] = field(default_factory=dict)
    qps: dict[str, float] = field(default_factory=dict)
    bare_p50_ms: float = 0.0
    bare_p95_ms: float = 0.0
    bare_qps: float = 0.0
    profile_ms: dict[str, float] = field(default_factory=dict)
    # 1-minute load average before and after measuring: the machine is shared.
    load: tuple[float, float] = (math.nan, math.nan)

    @property
    def ratio(self) -> float:
        return self.p95_ms["hybrid"] / self.bare_p95_ms if self.bare_p95_ms else math.nan

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["hybrid_p95_over_bare_p95"] = self.ratio
        data["goals"] = {
            "hybrid_p95_ms": P95_GOAL_MS,
            "ratio": RATIO_GOAL,
            "p95_met": self.p95_ms.get("hybrid", math.inf) <= P95_GOAL_MS,
            "ratio_met": self.ratio <= RATIO_GOAL,
        }
        return data


def _settings(home: Path) -> Any:
    graph = f"ladybug://{home}/graph?buffer_pool_mb={GRAPH_POOL_MB}"
    return load_settings({"home": str(home), "graph_url": graph}, environ={}, cwd=home)


def _log(message: str) -> None:
    print(f"[query bench] {message}", file=sys.stderr, flush=True)


def build(
    janus: Janus, home: Path, chunks: int, names: Names, entity_share: float = ENTITY_SHARE
) -> float | None:
    """Ingest the notes (an unchanged file is skipped, a killed build resumes).

    Returns the seconds taken, or None when nothing needed indexing.
    """
    held = stats(janus).get(TENANT, {}).get("vectors", 0)
    folder = home / "corpus"
    files = sorted(folder.glob("reports-*.jsonl"))
    if not files:
        files = write_corpus(folder, chunks, Notes(names), janus.embedder)
    options = IngestOptions(
        entities=False, batch_chunks=2_048, extract=ExtractOptions(json_text_field="text")
    )
    done = {"chunk": 0}
    started = time.perf_counter()

    def progress(kind: str, amount: int) -> None:
        if kind == "chunk":
            done["chunk"] += amount
            if done["chunk"] % 10_000 < amount:
                rate = done["chunk"] / (time.perf_counter() - started)
                _log(f"{done['chunk']:,} chunks indexed ({rate:,.0f}/s)")

    embedder = cast(Embedder, HashingEmbedder(janus.embedder))
    ingestor = Ingestor(janus, embedder, options, progress=progress)
    ingestor.projector.extractor = DictionaryExtractor(names, entity_share)
    ingestor.resume(TENANT)
    report = ingestor.ingest(files, tenant=TENANT)
    if report.failed:
        raise SystemExit(f"build failed: {report.failed[0].error}")
    if stats(janus).get(TENANT, {}).get("vectors", 0) == held:
        _log(f"reusing the {held:,} chunks in {home}")
        return None
    return time.perf_counter() - started


def _quantile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def _timed(call: Callable[[Any], object], items: Sequence[Any]) -> list[float]:
    took = []
    for item in items:
        started = time.perf_counter()
        call(item)
        took.append((time.perf_counter() - started) * 1000)
    return took


def _concurrent_qps(make: Callable[[], Callable[[Any], object]], items: Sequence[Any]) -> float:
    local = threading.local()

    def work(item: Any) -> None:
        if not hasattr(local, "call"):
            local.call = make()
        local.call(item)

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(work, items[:CLIENTS]))  # warm each client
        started = time.perf_counter()
        list(pool.map(work, items))
        return len(items) / (time.perf_counter() - started)


@contextmanager
def profiled(janus: Janus, totals: dict[str, float]) -> Iterator[None]:
    """Add the seconds spent in each retrieval step to ``totals`` while active."""
    from janus_stack.retrieve import dense, keyword, search  # noqa: PLC0415
    from janus_stack.retrieve.graph import GraphSearch  # noqa: PLC0415
    from janus_stack.retrieve.linking import EntityLinker  # noqa: PLC0415

    patches: list[tuple[Any, str, Any]] = [
        (dense, "embed_query", "embed query"),
        (keyword, "search", "keyword search"),
        (EntityLinker, "link", "link entities (spaCy + names)"),
        (GraphSearch, "run", "graph search"),
        (search, "load_chunks", "ledger: load hits"),
    ]
    originals = []
    for owner, name, label in patches:
        original = getattr(owner, name)
        originals.append((owner, name, original))

        def wrapper(*args: Any, _f: Any = original, _label: str = label, **kw: Any) -> Any:
            started = time.perf_counter()
            try:
                return _f(*args, **kw)
            finally:
                totals[_label] = totals.get(_label, 0.0) + time.perf_counter() - started

        setattr(owner, name, wrapper)
    index = janus.vectors
    raw_search = index.search

    def vector_search(*args: Any, **kw: Any) -> Any:
        started = time.perf_counter()
        try:
            return raw_search(*args, **kw)
        finally:
            totals["vector search"] = (
                totals.get("vector search", 0.0) + time.perf_counter() - started
            )

    index.search = vector_search  # type: ignore[method-assign]
    try:
        yield
    finally:
        del index.search
        for owner, name, original in originals:
            setattr(owner, name, original)


def measure(
    home: Path,
    chunks: int,
    queries: int,
    *,
    profile: bool,
    share: float,
    analyze: bool,
    rerank: bool = True,
) -> Result:
    settings = _settings(home)
    names = Names.build()
    with Janus(settings) as janus:
        build_s = build(janus, home, chunks, names, share)
        if analyze and janus.ledger.dialect == "sqlite":
            with janus.ledger.session() as session:
                session.connection().exec_driver_sql("ANALYZE")
            _log("ran ANALYZE on the SQLite ledger")
        stored = stats(janus).get(TENANT, {})
        _log(f"index: {stored}")
        asked = Notes(names, seed=SEED + 1)
        texts = [asked.query() for _ in range(queries)]
        retriever = Retriever(janus)
        result = Result(
            chunks=chunks,
            build_s=build_s,
            queries=queries,
            stored=stored,
            entity_share=share,
            analyzed=analyze,
        )
        loaded = os.getloadavg()[0]
        # bare baseline: query vectors computed first, then only the slot's search is timed
        vectors = [v.tolist() for v in janus.embedder.embed(texts)]
        index, where = janus.vectors, VectorFilter(TENANT)

        def bare_search(vector: list[float]) -> object:
            return index.search(vector, where, limit=10, with_payload=False)

        for vector in vectors[:5]:
            bare_search(vector)
        bare = _timed(bare_search, vectors)
        result.bare_p50_ms, result.bare_p95_ms = statistics.median(bare), _quantile(bare, 0.95)
        result.bare_qps = _concurrent_qps(lambda: bare_search, vectors)
        _log(f"bare vector search p50 {result.bare_p50_ms:.2f} ms p95 {result.bare_p95_ms:.2f} ms")
        extractor = retriever.linker.extractor
        for row in (*MODES, RERANKED) if rerank else MODES:
            mode = "hybrid" if row == RERANKED else row
            weights = FusionWeights(rerank=RERANK_WEIGHT) if row == RERANKED else None
            searcher = Retriever(janus, extractor=extractor, weights=weights)
            for text in texts[:5]:
                searcher.search(text, mode=mode, k=10, tenant=TENANT)

            def one(query: str, m: str = mode, own: Retriever = searcher) -> object:
                return own.search(query, mode=m, k=10, tenant=TENANT)

            took = _timed(one, texts)
            result.p50_ms[row], result.p95_ms[row] = (
                statistics.median(took),
                _quantile(took, 0.95),
            )

            def client(m: str = mode, w: FusionWeights | None = weights) -> Callable[[str], object]:
                own = Retriever(janus, extractor=extractor, weights=w)
                return lambda q: own.search(q, mode=m, k=10, tenant=TENANT)

            result.qps[row] = _concurrent_qps(client, texts)
            _log(
                f"{row}: p50 {result.p50_ms[row]:.1f} ms p95 {result.p95_ms[row]:.1f} ms, "
                f"{result.qps[row]:.1f} q/s with {CLIENTS} clients"
            )
        if profile:
            totals: dict[str, float] = {}
            with profiled(janus, totals):
                fresh = Retriever(janus, extractor=extractor)
                started = time.perf_counter()
                for text in texts:
                    fresh.search(text, mode="hybrid", k=10, tenant=TENANT)
                wall = time.perf_counter() - started
            result.profile_ms = {k: v * 1000 / len(texts) for k, v in totals.items()}
            result.profile_ms["total (wall)"] = wall * 1000 / len(texts)
        result.load = (loaded, os.getloadavg()[0])
    return result


def _print(result: Result) -> None:
    print(
        f"\nQuery latency on {result.stored.get('chunks', 0):,} chunks "
        f"({result.stored.get('entities', 0):,} entities, {result.stored.get('relations', 0):,} "
        f"relations), {result.queries} queries, k=10"
        + (f"; index built in {result.build_s:.0f} s" if result.build_s else "")
        + (
            f"\n(entities in {result.entity_share:.0%} of the documents"
            + ("; ledger ANALYZEd)" if result.analyzed else "; ledger as ingest left it)")
        )
    )
    print(f"load average (1 min) {result.load[0]:.2f} before, {result.load[1]:.2f} after measuring")
    print(f"{'mode':<22}{'p50 ms':>10}{'p95 ms':>10}{f'q/s x{CLIENTS}':>12}")
    print(
        f"{'bare vector search':<22}{result.bare_p50_ms:>10.2f}{result.bare_p95_ms:>10.2f}"
        f"{result.bare_qps:>12.1f}"
    )
    for row in result.p95_ms:
        print(
            f"{row:<22}{result.p50_ms[row]:>10.1f}{result.p95_ms[row]:>10.1f}"
            f"{result.qps[row]:>12.1f}"
        )
    p95 = result.p95_ms["hybrid"]
    print(
        f"hybrid p95 {p95:.1f} ms (goal ≤ {P95_GOAL_MS:.0f}: "
        f"{'met' if p95 <= P95_GOAL_MS else 'NOT met'}); hybrid p95 / bare p95 = "
        f"{result.ratio:.1f}x (goal ≤ {RATIO_GOAL:.0f}x: "
        f"{'met' if result.ratio <= RATIO_GOAL else 'NOT met'})"
    )
    if result.profile_ms:
        print(
            "\nwhere a hybrid query's time goes (mean ms per query; the modes run side by "
            "side,\nso the steps add up to more than the wall time):"
        )
        for label, value in sorted(result.profile_ms.items(), key=lambda item: -item[1]):
            print(f"  {label:<34}{value:>8.1f}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000, help="index size (default 100k)")
    parser.add_argument("--queries", type=int, default=200, help="queries per mode")
    parser.add_argument("--home", type=Path, help="JANUS_HOME to build in and reuse")
    parser.add_argument("--profile", action="store_true", help="break hybrid time down by step")
    parser.add_argument(
        "--entity-share",
        type=float,
        default=ENTITY_SHARE,
        help=f"share of documents given entities (default {ENTITY_SHARE})",
    )
    parser.add_argument(
        "--analyze", action="store_true", help="run ANALYZE on the SQLite ledger before measuring"
    )
    parser.add_argument(
        "--build-only", action="store_true", help="build the index (--home) and stop"
    )
    parser.add_argument(
        "--no-rerank", action="store_true", help=f"leave the {RERANKED} row out (minutes)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.build_only:
        if args.home is None:
            parser.error("--build-only needs --home")
        args.home.mkdir(parents=True, exist_ok=True)
        with Janus(_settings(args.home)) as janus:
            took = build(janus, args.home, args.chunks, Names.build(), args.entity_share)
            _log(f"built in {took or 0:.0f} s: {stats(janus).get(TENANT, {})}")
        return 0
    with ExitStack() as stack:
        home = args.home or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="janus-bench-query-"))
        )
        home.mkdir(parents=True, exist_ok=True)
        result = measure(
            home,
            args.chunks,
            args.queries,
            profile=args.profile,
            share=args.entity_share,
            analyze=args.analyze,
            rerank=not args.no_rerank,
        )
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        _print(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
