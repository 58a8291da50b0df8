"""Entity extraction: Janus's spaCy extractor vs. bare ``nlp.pipe``, characters/s.

The corpus is the English Wikipedia sample dump shipped with gensim's test
data (real articles), read by Janus's MediaWiki extractor and cut into
~1,200-character chunks at paragraph breaks — about what the chunker hands
over. Without gensim a repeated, made-up text stands in (and says so).

Rows (``janus_ops_s``/``raw_ops_s`` are characters per second):

* ``extract``: the default extractor (NER + relations) against the same
  model with the very same components switched on, merely iterated, so the
  ratio prices the dependency patterns, the merging and the IDs;
* ``extract vs full pipe``: the same extractor against the model's full
  default pipeline, which is what a naive ``nlp.pipe`` would run;
* ``ner only``: ``relations=False`` against ``nlp.pipe`` with only tok2vec
  and NER.

Run: ``python -m benchmarks.entities [max-characters]`` (default 200,000).
"""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Iterable

import spacy

from benchmarks._common import BenchRow, ops_per_second
from janus_stack.ingest.entities import ChunkText
from janus_stack.ingest.extract import extract
from janus_stack.ingest.spacy_extractor import DEFAULT_MODEL, SpacyEntityExtractor

DEFAULT_CHARS = 200_000
ROUNDS = 2
CHUNK_CHARS = 1_200
WIKI_SAMPLE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
BATCH = 32


def wikipedia_texts(max_chars: int) -> tuple[list[str], str]:
    """Chunk-sized texts of real articles, up to ``max_chars`` characters in all."""
    try:
        import gensim  # type: ignore[import-untyped]  # noqa: PLC0415
    except ModuleNotFoundError:
        return _made_up(max_chars), "made-up text (gensim not installed)"
    path = pathlib.Path(gensim.__file__).parent / "test" / "test_data" / WIKI_SAMPLE
    with path.open("rb") as stream:
        documents = extract(stream, name=path.name, max_bytes=1 << 30)
        texts = _chunks((doc.text for doc in documents), max_chars)
    return texts, f"Wikipedia sample ({path.name})"


def _chunks(documents: Iterable[str], max_chars: int) -> list[str]:
    texts: list[str] = []
    total = 0
    for text in documents:
        current = ""
        for paragraph in text.split("\n\n"):
            if current and len(current) + len(paragraph) > CHUNK_CHARS:
                texts.append(current)
                total += len(current)
                current = ""
            current = f"{current}\n\n{paragraph}" if current else paragraph
            if total >= max_chars:
                return texts
        if current:
            texts.append(current)
            total += len(current)
    return texts


def _made_up(max_chars: int) -> list[str]:
    sentence = (
        "Apollo 8 was launched on December 21, 1968 by NASA from Kennedy Space Center in "
        "Florida, with Frank Borman, James Lovell and William Anders aboard. "
    )
    chunk = sentence * (CHUNK_CHARS // len(sentence))
    return [chunk] * max(1, max_chars // len(chunk))


def run(workdir: pathlib.Path, max_chars: int = DEFAULT_CHARS) -> list[BenchRow]:
    """Measure the three rows described in the module docstring (``workdir`` is unused)."""
    del workdir
    texts, source = wikipedia_texts(max_chars)
    print(f"corpus: {source}: {len(texts)} chunks, {sum(map(len, texts)):,} characters")
    chars = sum(map(len, texts))
    chunks = [ChunkText(f"c{i}", f"d{i // 8}", "bench", text) for i, text in enumerate(texts)]

    full = spacy.load(DEFAULT_MODEL)
    extractor = SpacyEntityExtractor(batch_size=BATCH)
    ner_only = SpacyEntityExtractor(batch_size=BATCH, relations=False)
    extractor.load()
    ner_only.load()
    enabled = [name for name in full.pipe_names if name in extractor.load().pipe_names]
    ner_pipes = [name for name in full.pipe_names if name in ner_only.load().pipe_names]

    def bare(pipes: list[str] | None) -> None:
        disabled = [] if pipes is None else [p for p in full.pipe_names if p not in pipes]
        with full.select_pipes(disable=disabled):
            for _doc in full.pipe(texts, batch_size=BATCH):
                pass

    rates = {name: 0.0 for name in ("extract", "same", "full", "ner", "bare ner")}
    work = {
        "extract": lambda: extractor.extract(chunks),
        "same": lambda: bare(enabled),
        "full": lambda: bare(None),
        "ner": lambda: ner_only.extract(chunks),
        "bare ner": lambda: bare(ner_pipes),
    }
    for _ in range(ROUNDS):  # interleaved, so every path sees the same machine load
        for name, call in work.items():
            rates[name] = max(rates[name], ops_per_second(call, chars, repeat=1))
    extract_rate, same_rate, full_rate = rates["extract"], rates["same"], rates["full"]
    ner_rate, bare_ner_rate = rates["ner"], rates["bare ner"]
    return [
        BenchRow("entities", "spacy", "extract", BATCH, extract_rate, same_rate),
        BenchRow("entities", "spacy", "extract vs full pipe", BATCH, extract_rate, full_rate),
        BenchRow("entities", "spacy", "ner only", BATCH, ner_rate, bare_ner_rate),
    ]


if __name__ == "__main__":
    import tempfile

    limit = int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CHARS
    with tempfile.TemporaryDirectory() as tmp:
        rows = run(pathlib.Path(tmp), limit)
    print(f"{'operation':22} {'janus chars/s':>14} {'raw chars/s':>12} {'ratio':>6}")
    for row in rows:
        print(
            f"{row.operation:22} {row.janus_ops_s:14,.0f} {row.raw_ops_s:12,.0f} {row.ratio:6.2f}"
        )
