"""What an evaluation runs on: a corpus, queries, relevance judgments.

A :class:`Dataset` holds queries (:class:`EvalQuery`), graded relevance by
document (``qrels``: query ID → document ID → grade, grade > 0 relevant)
and a :class:`Corpus` that knows how to put its documents into a memory and
how to tell which of its documents a search hit belongs to.

Two kinds of corpus exist:

* :class:`RecordsCorpus` — documents given as records (``id``, ``title``,
  ``text``). They are written to one normalised JSON Lines file under
  ``JANUS_HOME/eval/<name>/corpus.jsonl`` (the same bytes every time, so a
  second ingest is a hash no-op) and ingested one record per document; a hit
  maps back to its record through the document's ``sub_id`` (the line
  number) and ``source`` (that file).
* :class:`FileCorpus` — files ingested as they are (the Wikipedia sample
  dump); a hit maps to its document by title.

The loaders for users' JSON Lines datasets and their format are in
:mod:`janus_stack.evaluate.loaders`; the built-in datasets in
:mod:`janus_stack.evaluate.builtin`.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from janus_stack.errors import InvalidInputError
from janus_stack.ingest.extract import ExtractOptions
from janus_stack.retrieve.types import Hit

_SLUG = re.compile(r"[^a-z0-9_.-]+")


class DatasetError(InvalidInputError):
    """A dataset file is missing or malformed; the message names the file and line."""


@dataclass(frozen=True)
class CorpusDoc:
    """One document of a records corpus."""

    id: str
    text: str
    title: str = ""


@dataclass(frozen=True)
class EvalQuery:
    """One question of a dataset.

    Attributes:
        answers: reference answers (any one counts) for exact match and F1.
        evidence: quotes of the supporting text; a cited chunk that contains
            one (after normalisation) counts as a correct citation.
        supporting_docs: the document IDs a complete answer needs.
        multi_hop: the answer needs several documents (``supporting_docs``).
        exclude_docs: documents left out of this query's ranking (the query
            document itself when documents are used as queries).
    """

    id: str
    text: str
    answers: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    supporting_docs: tuple[str, ...] = ()
    multi_hop: bool = False
    exclude_docs: frozenset[str] = frozenset()

    @property
    def has_qa(self) -> bool:
        return bool(self.answers or self.evidence or (self.multi_hop and self.supporting_docs))


class Corpus(ABC):
    """The documents of a dataset: how to ingest them and how to recognise them in hits."""

    @abstractmethod
    def files(self, workdir: Path) -> list[Path]:
        """The files to ingest (written under ``workdir`` if the corpus builds them)."""

    @abstractmethod
    def doc_of(self, hit: Hit) -> str | None:
        """The dataset's document ID for a hit, or None for a chunk of another source."""

    def bind(self, workdir: Path) -> None:
        """Prepare :meth:`doc_of` for a corpus ingested from ``workdir`` (no I/O)."""
        del workdir

    @property
    def extract_options(self) -> ExtractOptions:
        return ExtractOptions()

    @property
    @abstractmethod
    def size(self) -> int:
        """How many documents the corpus holds (as far as is known before ingesting)."""


class RecordsCorpus(Corpus):
    """Records written as one normalised JSONL file; see the module docstring."""

    FILE = "corpus.jsonl"

    def __init__(self, name: str, docs: Sequence[CorpusDoc]) -> None:
        self.name = name
        self.docs = list(docs)
        self._source: str | None = None

    @property
    def size(self) -> int:
        return len(self.docs)

    @property
    def extract_options(self) -> ExtractOptions:
        return ExtractOptions(json_text_field="text", json_records_as_documents=True)

    def render(self) -> bytes:
        """The normalised file: one ``{"id", "title", "text"}`` per line, title first in text."""
        lines = []
        for doc in self.docs:
            text = doc.text.strip()
            if doc.title and not text.startswith(doc.title):
                text = f"{doc.title}\n\n{text}"
            record = {"id": doc.id, "title": doc.title, "text": text}
            lines.append(json.dumps(record, ensure_ascii=False, sort_keys=True))
        return ("\n".join(lines) + "\n").encode("utf-8")

    def files(self, workdir: Path) -> list[Path]:
        path = workdir / slug(self.name) / self.FILE
        data = self.render()
        if not path.is_file() or path.read_bytes() != data:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".part")
            partial.write_bytes(data)
            partial.replace(path)
        self._source = str(path.resolve())
        return [path]

    def bind(self, workdir: Path) -> None:
        """Recognise hits of the file under ``workdir`` without (re)writing it."""
        self._source = str((workdir / slug(self.name) / self.FILE).resolve())

    def doc_of(self, hit: Hit) -> str | None:
        if self._source is None:
            raise RuntimeError("RecordsCorpus.files() or bind() must run before doc_of()")
        if hit.source != self._source or not hit.sub_id.isdigit():
            return None
        line = int(hit.sub_id)
        return self.docs[line - 1].id if 1 <= line <= len(self.docs) else None


class FileCorpus(Corpus):
    """Files ingested as they are; a hit's document ID is its document title."""

    def __init__(self, paths: Sequence[Path], titles: int | None = None) -> None:
        self.paths = [Path(p) for p in paths]
        self._sources = {str(p.resolve()) for p in self.paths}
        self._titles = titles

    @property
    def size(self) -> int:
        return self._titles if self._titles is not None else len(self.paths)

    def files(self, workdir: Path) -> list[Path]:
        return list(self.paths)

    def doc_of(self, hit: Hit) -> str | None:
        return hit.title if hit.source in self._sources else None


@dataclass
class Dataset:
    """Queries, graded relevance by document, and the corpus they refer to.

    Attributes:
        name: short name; the default tenant is ``eval-<name>``.
        qrels: query ID → document ID → grade (grade > 0 is relevant).
        entities: whether to extract entities when ingesting by default.
    """

    name: str
    corpus: Corpus
    queries: list[EvalQuery]
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    entities: bool = True
    description: str = ""

    @property
    def tenant(self) -> str:
        return f"eval-{slug(self.name)}"[:64]

    def judged(self) -> list[EvalQuery]:
        """The queries with at least one relevant document."""
        return [q for q in self.queries if any(g > 0 for g in self.qrels.get(q.id, {}).values())]


def slug(name: str) -> str:
    return _SLUG.sub("-", name.lower()).strip("-.") or "dataset"


def qrels_from_supporting(queries: Sequence[EvalQuery]) -> dict[str, dict[str, int]]:
    """Relevance 1 for each supporting document of each query."""
    return {q.id: dict.fromkeys(q.supporting_docs, 1) for q in queries if q.supporting_docs}


def spread(items: Sequence[EvalQuery], limit: int | None) -> list[EvalQuery]:
    """At most ``limit`` items spread evenly over ``items`` (deterministic), in order."""
    if limit is None or limit >= len(items):
        return list(items)
    if limit <= 0:
        return []
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def check_qrels(
    qrels: Mapping[str, Mapping[str, int]], known_docs: set[str], where: str
) -> list[str]:
    """Document IDs named in ``qrels`` that the corpus lacks (for a clear error)."""
    missing = sorted({d for docs in qrels.values() for d in docs if d not in known_docs})
    if missing and where:
        shown = ", ".join(repr(d) for d in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DatasetError(f"{where}: relevance judgments name unknown documents {shown}{more}")
    return missing
