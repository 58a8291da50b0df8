"""The built-in datasets, all installable offline from packages.

``fitz-gov``
    The ``fitz-gov`` package (MIT; in Janus's ``test`` extra): 5,043
    LLM-written documents across ~40 domains and 3,800 queries, 2,812 of
    them with relevant documents (the rest are abstention cases, skipped).
    Good for comparing our own modes, not comparable to BEIR numbers.
    Ingested without entities by default (graph mode then reports n/a).
``lee``
    gensim's Lee corpus: 50 short news articles (``lee.cor``) with human
    similarity ratings for every pair (``similarities0-1.txt``: the mean of
    ratings from 1 to 5, divided by 5). Each article is a query against
    the other 49; grade = round(5 * rating) - 2 (mean rating 2.5 or more is
    relevant: grade 1 for "somewhat", up to 3 for "highly similar").
``wiki-multihop``
    20 hand-checked multi-hop questions over gensim's English Wikipedia
    sample (106 articles, CC BY-SA; the corpus of ``janus quickstart``).
    Each names its answer, the supporting articles and evidence quotes
    copied verbatim from them. Documents are article titles.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from janus_stack.errors import ConfigError
from janus_stack.evaluate.datasets import (
    CorpusDoc,
    Dataset,
    DatasetError,
    EvalQuery,
    FileCorpus,
    RecordsCorpus,
    qrels_from_supporting,
)
from janus_stack.evaluate.loaders import load_folder, load_queries

WIKI_ARTICLES = 106
# The dump ``janus quickstart`` ingests (see janus_stack.cli.quickstart).
DUMP_GLOB = "test/test_data/enwiki-latest-pages-articles1.xml*.bz2"
LEE_QUERY_CHARS = 2_000


def fitz_gov() -> Dataset:
    data = _package_dir("fitz_gov", "fitz-gov") / "data"
    corpus_file = data / "corpus" / "documents.jsonl"
    mappings_file = data / "queries" / "query_mappings.json"
    docs: list[CorpusDoc] = []
    with corpus_file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                # A few IDs occur twice with different text: both count as that ID.
                title = record.get("title") or ""
                docs.append(CorpusDoc(id=str(record["id"]), title=title, text=record["content"]))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DatasetError(f"{corpus_file}:{number}: unexpected record ({exc})") from None
    try:
        mappings = json.loads(mappings_file.read_text(encoding="utf-8"))["mappings"]
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        raise DatasetError(f"{mappings_file}: unreadable query mappings ({exc})") from None
    queries: list[EvalQuery] = []
    qrels: dict[str, dict[str, int]] = {}
    for category in sorted(mappings):
        for query_id, case in mappings[category].items():
            queries.append(EvalQuery(id=query_id, text=case["query"]))
            relevant = case.get("relevant_docs") or []
            if relevant:
                qrels[query_id] = dict.fromkeys((str(d) for d in relevant), 1)
    return Dataset(
        name="fitz-gov",
        corpus=RecordsCorpus("fitz-gov", docs),
        queries=queries,
        qrels=qrels,
        entities=False,
        description="fitz-gov package: 5,043 documents, 3,800 queries (2,812 judged)",
    )


def lee() -> Dataset:
    data = _package_dir("gensim", "gensim") / "test" / "test_data"
    texts = [
        line.strip()
        for line in (data / "lee.cor").read_text(encoding="latin-1").split("\n")
        if line.strip()
    ]
    ratings = [
        [float(cell) for cell in line.split()]
        for line in (data / "similarities0-1.txt").read_text(encoding="ascii").splitlines()
        if line.strip()
    ]
    size = len(texts)
    if len(ratings) != size or any(len(row) != size for row in ratings):
        raise DatasetError(f"{data}: lee.cor has {size} documents but the ratings do not match")
    docs = [CorpusDoc(id=f"lee-{i + 1:02d}", text=text) for i, text in enumerate(texts)]
    queries: list[EvalQuery] = []
    qrels: dict[str, dict[str, int]] = {}
    for i, doc in enumerate(docs):
        queries.append(
            EvalQuery(
                id=doc.id, text=_cut(doc.text, LEE_QUERY_CHARS), exclude_docs=frozenset({doc.id})
            )
        )
        grades = {}
        for j, other in enumerate(docs):
            if i != j:  # the matrix is upper-triangular
                grades[other.id] = max(0, _round_half_up(5 * ratings[min(i, j)][max(i, j)]) - 2)
        qrels[doc.id] = grades
    return Dataset(
        name="lee",
        corpus=RecordsCorpus("lee", docs),
        queries=queries,
        qrels=qrels,
        description="gensim Lee corpus: 50 news articles as queries, human similarity ratings",
    )


def wiki_multihop() -> Dataset:
    source = resources.files("janus_stack.evaluate") / "data" / "wiki_multihop.jsonl"
    with resources.as_file(source) as path:
        queries = load_queries(path)
    return Dataset(
        name="wiki-multihop",
        corpus=FileCorpus([_wiki_dump()], titles=WIKI_ARTICLES),
        queries=queries,
        qrels=qrels_from_supporting(queries),
        description="20 multi-hop questions over the gensim Wikipedia sample (106 articles)",
    )


BUILTIN: dict[str, Callable[[], Dataset]] = {
    "fitz-gov": fitz_gov,
    "lee": lee,
    "wiki-multihop": wiki_multihop,
}


DESCRIPTIONS: dict[str, str] = {
    "fitz-gov": "5,043 documents, 2,812 judged queries (package fitz-gov); no entities",
    "lee": "50 news articles as queries, graded by human similarity ratings (gensim)",
    "wiki-multihop": "20 multi-hop questions with answers and evidence, Wikipedia sample",
}


def load_dataset(name_or_path: str) -> Dataset:
    """A built-in dataset by name, or a JSONL dataset folder by path."""
    if name_or_path in BUILTIN:
        return BUILTIN[name_or_path]()
    path = Path(name_or_path).expanduser()
    if not path.exists() and "/" not in name_or_path:
        raise DatasetError(
            f"unknown dataset {name_or_path!r}",
            hint=f"built-in: {', '.join(BUILTIN)}; or give a folder with corpus.jsonl "
            "and queries.jsonl",
        )
    return load_folder(path)


def _package_dir(module: str, package: str) -> Path:
    """Where an installed package lives, found without importing it (gensim is slow to import)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"this dataset needs the {package} package, which is not installed",
            hint=f"pip install {package}  (or the `test` extra of janus-stack)",
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _wiki_dump() -> Path:
    found = sorted(_package_dir("gensim", "gensim").glob(DUMP_GLOB))
    if not found:
        raise ConfigError("the installed gensim package has no Wikipedia sample dump")
    return found[0]


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0]


def _round_half_up(value: float) -> int:
    return int(value + 0.5 + 1e-9)
