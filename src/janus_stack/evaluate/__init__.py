"""Evaluation: how well Janus finds and answers, measured on datasets.

    from janus_stack.evaluate import Evaluator, load_dataset

    with Janus(settings) as janus:
        report = Evaluator(janus, load_dataset("fitz-gov")).run(limit=500)
        print(report.as_dict())

``janus eval DATASET`` is the command line. A dataset is a built-in name
(``fitz-gov``, ``lee``, ``wiki-multihop``; see :mod:`.builtin`) or a folder
of JSON Lines files in this format:

``corpus.jsonl``
    ``{"id": "d1", "title": "…", "text": "…"}`` — one document per line;
    ``id`` (or ``_id``) and ``text`` required, IDs unique.
``queries.jsonl``
    ``{"id": "q1", "text": "…", "answers": ["…"], "evidence": ["…"],
    "supporting_docs": ["d1", "d2"], "multi_hop": true}`` — ``id`` and
    ``text`` required. ``answers`` are reference answers (exact match and
    token F1, SQuAD normalisation); ``evidence`` are quotes copied from the
    supporting documents (citation precision: the share of cited chunks
    containing one); ``supporting_docs`` name the documents a complete
    answer needs (for multi-hop questions: were all of them retrieved).
``qrels.tsv`` or ``qrels.jsonl`` (optional if queries name ``supporting_docs``)
    ``query_id<TAB>doc_id<TAB>relevance`` lines (a header is allowed) or
    ``{"query_id": "q1", "doc_id": "d1", "relevance": 1}``; integer grades,
    > 0 relevant.

The corpus is ingested once into its own tenant (``eval-<name>``, one
document per record; re-running is a hash no-op) and relevance is by
document: a hit counts for the record it came from, found through the
document's ``source`` and ``sub_id``. Module map: ``datasets`` (value
types, corpora), ``loaders`` (the JSONL format), ``builtin``, ``metrics``
(nDCG, recall, MRR, EM, F1, citation precision), ``runner`` and ``report``
(what a run returns).
"""

from janus_stack.evaluate.builtin import BUILTIN, load_dataset
from janus_stack.evaluate.datasets import (
    Corpus,
    CorpusDoc,
    Dataset,
    DatasetError,
    EvalQuery,
    FileCorpus,
    RecordsCorpus,
)
from janus_stack.evaluate.loaders import load_folder
from janus_stack.evaluate.report import EvalReport, ModeScores, QAScores
from janus_stack.evaluate.runner import Evaluator

__all__ = [
    "BUILTIN",
    "Corpus",
    "CorpusDoc",
    "Dataset",
    "DatasetError",
    "EvalQuery",
    "EvalReport",
    "Evaluator",
    "FileCorpus",
    "ModeScores",
    "QAScores",
    "RecordsCorpus",
    "load_dataset",
    "load_folder",
]
