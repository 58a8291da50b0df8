"""Users' own datasets: a folder of JSON Lines files (and an optional TSV).

``corpus.jsonl`` — one document per line::

    {"id": "d1", "title": "Apollo 8", "text": "Apollo 8 was launched on December 21, 1968 ..."}

``id`` (or BEIR's ``_id``; a string or an integer) and a non-empty ``text``
are required, ``title`` is optional. IDs must be unique.

``queries.jsonl`` — one question per line::

    {"id": "q1", "text": "When was the first crewed mission to orbit the Moon launched?",
     "answers": ["December 21, 1968"], "evidence": ["was launched on December 21, 1968"],
     "supporting_docs": ["d1"], "multi_hop": false}

``id`` and ``text`` are required; ``answers`` (reference answers, any one
counts), ``evidence`` (quotes copied from the supporting documents),
``supporting_docs`` (document IDs) and ``multi_hop`` (default: more than
one supporting document) are optional. A string is accepted where a list
is expected.

``qrels.tsv`` or ``qrels.jsonl`` — relevance by document (optional when
the queries name their ``supporting_docs``, which then count as grade 1)::

    query_id<TAB>doc_id<TAB>relevance        (a header line is allowed; TREC's
    q1      d1      1                        four columns "q 0 d rel" too)

    {"query_id": "q1", "doc_id": "d1", "relevance": 1}

Grades are integers; 0 means judged not relevant. BEIR's layout
(``qrels/test.tsv``) is found too. Every error names the file and line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from janus_stack.evaluate.datasets import (
    CorpusDoc,
    Dataset,
    DatasetError,
    EvalQuery,
    RecordsCorpus,
    check_qrels,
    qrels_from_supporting,
)

QRELS_FILES = ("qrels.tsv", "qrels.jsonl", "qrels/test.tsv")


def load_folder(folder: Path, *, name: str | None = None) -> Dataset:
    """A dataset from ``folder`` (see the module docstring for the files)."""
    if not folder.is_dir():
        raise DatasetError(
            f"{folder}: no such dataset folder",
            hint="give a built-in name (janus eval --list) or a folder with corpus.jsonl "
            "and queries.jsonl",
        )
    corpus_file, queries_file = folder / "corpus.jsonl", folder / "queries.jsonl"
    for required in (corpus_file, queries_file):
        if not required.is_file():
            raise DatasetError(f"{required}: missing; a dataset folder needs it")
    docs = load_corpus(corpus_file)
    queries = load_queries(queries_file)
    qrels_file = next((folder / n for n in QRELS_FILES if (folder / n).is_file()), None)
    if qrels_file is None:
        qrels = qrels_from_supporting(queries)
        if not qrels:
            raise DatasetError(
                f"{folder}: no qrels.tsv or qrels.jsonl, and no query names supporting_docs",
                hint="add relevance judgments so retrieval can be scored",
            )
        where = str(queries_file)
    else:
        qrels = load_qrels(qrels_file, {q.id for q in queries})
        where = str(qrels_file)
    known = {d.id for d in docs}
    check_qrels(qrels, known, where)
    for query in queries:
        unknown = [d for d in query.supporting_docs if d not in known]
        if unknown:
            raise DatasetError(
                f"{queries_file}: query {query.id!r} names unknown supporting_docs {unknown}"
            )
    label = name or folder.resolve().name
    return Dataset(
        name=label,
        corpus=RecordsCorpus(label, docs),
        queries=queries,
        qrels=qrels,
        description=f"JSONL dataset in {folder}",
    )


def jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; a bad line is an error naming it."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc.strerror})") from None
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(
                        f"{path}:{number}: invalid JSON ({exc.msg} at column {exc.colno})"
                    ) from None
                if not isinstance(value, dict):
                    raise DatasetError(f"{path}:{number}: expected a JSON object")
                yield number, value
        except UnicodeDecodeError:
            raise DatasetError(f"{path}: not UTF-8 text") from None


def load_corpus(path: Path) -> list[CorpusDoc]:
    docs: list[CorpusDoc] = []
    seen: dict[str, int] = {}
    for number, record in jsonl_records(path):
        doc_id = _id(record, path, number)
        if doc_id in seen:
            raise DatasetError(
                f"{path}:{number}: duplicate id {doc_id!r} (first on line {seen[doc_id]})"
            )
        seen[doc_id] = number
        text = _text(record, "text", path, number)
        title = record.get("title", "")
        if not isinstance(title, str):
            raise DatasetError(f"{path}:{number}: 'title' must be a string")
        docs.append(CorpusDoc(id=doc_id, text=text, title=title.strip()))
    if not docs:
        raise DatasetError(f"{path}: holds no documents")
    return docs


def load_queries(path: Path) -> list[EvalQuery]:
    queries: list[EvalQuery] = []
    seen: set[str] = set()
    for number, record in jsonl_records(path):
        query_id = _id(record, path, number)
        if query_id in seen:
            raise DatasetError(f"{path}:{number}: duplicate query id {query_id!r}")
        seen.add(query_id)
        supporting = _strings(record, "supporting_docs", path, number)
        multi_hop = record.get("multi_hop", len(supporting) > 1)
        if not isinstance(multi_hop, bool):
            raise DatasetError(f"{path}:{number}: 'multi_hop' must be true or false")
        queries.append(
            EvalQuery(
                id=query_id,
                text=_text(record, "text", path, number),
                answers=_strings(record, "answers", path, number),
                evidence=_strings(record, "evidence", path, number),
                supporting_docs=supporting,
                multi_hop=multi_hop,
            )
        )
    if not queries:
        raise DatasetError(f"{path}: holds no queries")
    return queries


def load_qrels(path: Path, query_ids: set[str]) -> dict[str, dict[str, int]]:
    """Relevance judgments from a TSV or JSONL file; unknown query IDs are an error."""
    rows = _jsonl_qrels(path) if path.suffix == ".jsonl" else _tsv_qrels(path)
    qrels: dict[str, dict[str, int]] = {}
    for number, query_id, doc_id, grade in rows:
        if query_id not in query_ids:
            raise DatasetError(f"{path}:{number}: unknown query id {query_id!r}")
        qrels.setdefault(query_id, {})[doc_id] = grade
    if not qrels:
        raise DatasetError(f"{path}: holds no relevance judgments")
    return qrels


def _jsonl_qrels(path: Path) -> Iterator[tuple[int, str, str, int]]:
    for number, record in jsonl_records(path):
        values = []
        for key in ("query_id", "doc_id"):
            value = record.get(key)
            if isinstance(value, bool) or not isinstance(value, str | int) or str(value) == "":
                raise DatasetError(f"{path}:{number}: {key!r} is missing or not a string")
            values.append(str(value))
        yield number, values[0], values[1], _grade(record.get("relevance", 1), path, number)


def _tsv_qrels(path: Path) -> Iterator[tuple[int, str, str, int]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        cells = line.split("\t") if "\t" in line else line.split()
        cells = [c.strip() for c in cells]
        if len(cells) == 4:  # TREC: query 0 doc grade
            cells = [cells[0], cells[2], cells[3]]
        if len(cells) != 3:
            raise DatasetError(
                f"{path}:{number}: expected query_id, doc_id and relevance separated by tabs"
            )
        if number == 1 and not _is_int(cells[2]):
            continue  # a header line
        yield number, cells[0], cells[1], _grade(cells[2], path, number)


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _grade(value: object, path: Path, number: int) -> int:
    if isinstance(value, bool):
        raise DatasetError(f"{path}:{number}: relevance must be an integer")
    if isinstance(value, str) and _is_int(value):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise DatasetError(f"{path}:{number}: relevance {value!r} is not an integer")


def _id(record: dict[str, Any], path: Path, number: int) -> str:
    value = record.get("id", record.get("_id"))
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        raise DatasetError(f"{path}:{number}: 'id' is missing or not a string")
    return str(value).strip()


def _text(record: dict[str, Any], key: str, path: Path, number: int) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        raise DatasetError(f"{path}:{number}: {key!r} is missing or empty")
    return value.strip()


def _strings(record: dict[str, Any], key: str, path: Path, number: int) -> tuple[str, ...]:
    value = record.get(key, [])
    if isinstance(value, str | int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not all(
        isinstance(v, str | int) and not isinstance(v, bool) for v in value
    ):
        raise DatasetError(f"{path}:{number}: {key!r} must be a list of strings")
    return tuple(str(v).strip() for v in value if str(v).strip())
