"""Dataset loaders: the JSONL format, its errors, and the built-in sets on real records."""

from __future__ import annotations

import json
from io import BytesIO
from pathlib import Path

import pytest

from janus_stack.cli.quickstart import sample_corpus
from janus_stack.evaluate import DatasetError, load_dataset, load_folder
from janus_stack.evaluate.builtin import fitz_gov, lee, wiki_multihop
from janus_stack.evaluate.datasets import RecordsCorpus, spread
from janus_stack.evaluate.loaders import load_qrels
from janus_stack.ingest.extract import extract
from janus_stack.retrieve.types import Hit

TINY = Path(__file__).parent / "fixtures" / "tiny"


def copy_tiny(target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in ("corpus.jsonl", "queries.jsonl", "qrels.tsv"):
        (target / name).write_bytes((TINY / name).read_bytes())
    return target


def hit(source: str, sub_id: str, title: str = "") -> Hit:
    return Hit(
        chunk_id="c",
        doc_id="d",
        document_id="x",
        title=title,
        source=source,
        sub_id=sub_id,
        version=1,
        ordinal=0,
        page=None,
        heading_path=(),
        text="",
        snippet="",
        score=1.0,
    )


def test_tiny_folder_loads_queries_qrels_and_answers() -> None:
    data = load_folder(TINY)
    assert data.name == "tiny" and data.tenant == "eval-tiny"
    assert [q.id for q in data.queries] == ["q1", "q2", "q3", "q4"]
    q3 = data.queries[2]
    assert q3.multi_hop and q3.supporting_docs == ("apollo8", "lovell")
    assert q3.answers == ("Cleveland, Ohio",)
    assert data.queries[0].multi_hop is False  # one supporting doc
    assert data.qrels["q4"] == {"chess": 1, "apollo8": 0}  # header line skipped
    assert [q.id for q in data.judged()] == ["q1", "q2", "q3", "q4"]
    assert [q.id for q in data.queries if q.has_qa] == ["q1", "q2", "q3"]


def test_records_corpus_file_is_stable_and_maps_hits_back(tmp_path: Path) -> None:
    corpus = load_folder(TINY).corpus
    assert isinstance(corpus, RecordsCorpus)
    (path,) = corpus.files(tmp_path)
    first = path.read_bytes()
    mtime = path.stat().st_mtime_ns
    corpus.files(tmp_path)
    assert path.read_bytes() == first and path.stat().st_mtime_ns == mtime
    lines = [json.loads(line) for line in first.decode().splitlines()]
    assert lines[0]["id"] == "apollo8" and lines[0]["text"].startswith("Apollo 8")
    assert lines[3]["text"].startswith("Growing tomatoes\n\nTomatoes")  # title added
    source = str(path.resolve())
    assert corpus.doc_of(hit(source, "2")) == "lovell"
    assert corpus.doc_of(hit(source, "9")) is None
    assert corpus.doc_of(hit("/elsewhere.jsonl", "2")) is None


def test_qrels_jsonl_and_trec_forms(tmp_path: Path) -> None:
    jsonl = tmp_path / "qrels.jsonl"
    jsonl.write_text(
        '{"query_id": "q1", "doc_id": "d1", "relevance": 2}\n\n{"query_id": 7, "doc_id": "d2"}\n'
    )
    assert load_qrels(jsonl, {"q1", "7"}) == {"q1": {"d1": 2}, "7": {"d2": 1}}
    trec = tmp_path / "qrels.tsv"
    trec.write_text("q1 0 d1 1\nq1 0 d2 0\n")
    assert load_qrels(trec, {"q1"}) == {"q1": {"d1": 1, "d2": 0}}


def test_queries_with_supporting_docs_need_no_qrels_file(tmp_path: Path) -> None:
    folder = copy_tiny(tmp_path / "set")
    (folder / "qrels.tsv").unlink()
    data = load_folder(folder)
    assert data.qrels == {"q1": {"apollo8": 1}, "q3": {"apollo8": 1, "lovell": 1}}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "corpus.jsonl",
            '{"id": "a", "text": "x"}\n{"id": "b", "text": "y"\n',
            "corpus.jsonl:2: invalid JSON",
        ),
        (
            "corpus.jsonl",
            '{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n',
            "corpus.jsonl:2: duplicate id 'a'",
        ),
        (
            "corpus.jsonl",
            '{"id": "a", "text": "x"}\n[1, 2]\n',
            "corpus.jsonl:2: expected a JSON object",
        ),
        ("corpus.jsonl", '{"id": "a", "text": "  "}\n', "corpus.jsonl:1: 'text' is missing"),
        ("queries.jsonl", '{"id": "q1"}\n', "queries.jsonl:1: 'text' is missing"),
        (
            "queries.jsonl",
            '{"id": "q1", "text": "t", "answers": {"a": 1}}\n',
            "queries.jsonl:1: 'answers' must be a list",
        ),
        ("queries.jsonl", '{"text": "t"}\n', "queries.jsonl:1: 'id' is missing"),
        ("qrels.tsv", "q1\tapollo8\n", "qrels.tsv:1: expected query_id, doc_id and relevance"),
        ("qrels.tsv", "q1\tapollo8\t1\nq1\tapollo8\thigh\n", "qrels.tsv:2: relevance 'high'"),
        ("qrels.tsv", "q1\tapollo8\t1\nq9\tapollo8\t1\n", "qrels.tsv:2: unknown query id 'q9'"),
        ("qrels.tsv", "q1\tnowhere\t1\n", "relevance judgments name unknown documents 'nowhere'"),
    ],
)
def test_bad_input_names_file_and_line(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    folder = copy_tiny(tmp_path / "set")
    (folder / name).write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        load_folder(folder)
    assert message in str(caught.value)
    assert str(folder) in str(caught.value)


def test_missing_files_and_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such dataset folder"):
        load_folder(tmp_path / "absent")
    folder = copy_tiny(tmp_path / "set")
    (folder / "queries.jsonl").unlink()
    with pytest.raises(DatasetError, match=r"queries\.jsonl: missing"):
        load_folder(folder)
    with pytest.raises(DatasetError, match="unknown dataset 'nope'"):
        load_dataset("nope")


def test_spread_is_even_and_deterministic() -> None:
    items = load_folder(TINY).queries
    assert [q.id for q in spread(items, 2)] == ["q1", "q3"]
    assert spread(items, None) == items and spread(items, 10) == items


def test_fitz_gov_real_records() -> None:
    pytest.importorskip("fitz_gov")
    data = fitz_gov()
    assert data.corpus.size == 5043 and len(data.queries) == 3800
    assert len(data.judged()) == 2812
    assert data.entities is False and data.tenant == "eval-fitz-gov"
    by_id = {q.id: q for q in data.queries}
    assert by_id["confident_medium_001"].text == "Why did the server crash?"
    assert data.qrels["confident_medium_001"] == {"conf_011": 1}
    assert "abstain_medium_001" not in data.qrels  # no relevant document: not judged
    assert isinstance(data.corpus, RecordsCorpus)
    first = data.corpus.docs[0]
    assert (first.id, first.title) == ("bio_001", "Cellular Respiration Overview")


def test_lee_real_records() -> None:
    data = lee()
    assert data.corpus.size == 50 and len(data.queries) == 50
    first = data.queries[0]
    assert first.id == "lee-01" and first.exclude_docs == frozenset({"lee-01"})
    assert first.text.startswith("The national executive of the strife-torn Democrats")
    assert "lee-01" not in data.qrels["lee-01"]
    # rating 0.96 for articles 1 and 33 -> round(4.8) - 2 = 3; symmetric
    assert data.qrels["lee-01"]["lee-33"] == 3 and data.qrels["lee-33"]["lee-01"] == 3
    assert data.qrels["lee-01"]["lee-02"] == 0  # rating 0.3
    assert len(data.judged()) == 48


def test_wiki_multihop_quotes_are_verbatim_in_the_articles() -> None:
    data = wiki_multihop()
    assert 15 <= len(data.queries) <= 25
    assert all(q.multi_hop and len(q.supporting_docs) >= 2 and q.answers for q in data.queries)
    wanted = {d for q in data.queries for d in q.supporting_docs}
    dump = sample_corpus()
    texts = {
        doc.title: " ".join(doc.text.split())
        for doc in extract(BytesIO(dump.read_bytes()), name=dump.name, max_bytes=10**9)
        if doc.title in wanted
    }
    assert set(texts) == wanted
    for query in data.queries:
        for quote in query.evidence:
            assert any(" ".join(quote.split()) in texts[d] for d in query.supporting_docs), (
                query.id,
                quote,
            )
