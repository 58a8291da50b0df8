"""Embeddings slot: Janus ``embed()`` vs. the bare runtime call on the same 512 chunks.

The chunks are ~256-token windows of real English (CPython's own
documentation topics, shipped with every Python, so the run needs no
download). The bare baseline is what a user would write by hand: the same
tokenizer file and ONNX model, one ``InferenceSession.run`` per batch of 32,
mean pooling and normalisation in numpy (for ``quantize=int8`` one text per
run, as Janus does there to keep vectors batch-independent). The ratio prices what Janus adds
(validation, de-duplication, length sorting, checks); the absolute numbers
say how fast ingest can embed on this machine. Runs alternate so both sides
see the same machine load.

Run: ``python -m benchmarks.embedder [chunks]``.
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from pathlib import Path
from pydoc_data.topics import topics
from typing import Any

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped, unused-ignore]
from numpy.typing import NDArray
from tokenizers import Tokenizer

from benchmarks._common import BenchRow, ops_per_second
from janus_stack.slots import embeddings
from janus_stack.slots.embeddings import minilm

BATCH = 32
ROUNDS = 2
WORDS_PER_CHUNK = 200  # ~256 MiniLM tokens of English prose


def real_chunks(count: int) -> list[str]:
    """``count`` windows of CPython's documentation topics (real prose, always installed)."""
    words = re.sub(r"\s+", " ", " ".join(topics[k] for k in sorted(topics))).split()
    need = count * WORDS_PER_CHUNK
    words = (words * (need // len(words) + 1))[:need]
    return [
        " ".join(words[i : i + WORDS_PER_CHUNK]) + f" [{i}]"  # unique, so nothing is de-duplicated
        for i in range(0, need, WORDS_PER_CHUNK)
    ]


class RawMiniLM:
    """The hand-written baseline: tokenizers + onnxruntime + numpy pooling."""

    def __init__(
        self, onnx_model: Path | None = None, batch: int = BATCH, threads: int = 0
    ) -> None:
        self.batch = batch
        model_file = onnx_model or minilm.onnx_model_file()
        self.tokenizer = Tokenizer.from_file(str(minilm.tokenizer_file()))
        self.tokenizer.enable_truncation(max_length=256)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            str(model_file), options, providers=["CPUExecutionProvider"]
        )

    def embed(self, texts: list[str]) -> NDArray[np.float32]:
        out = []
        for start in range(0, len(texts), self.batch):
            encodings = self.tokenizer.encode_batch(texts[start : start + self.batch])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = self.session.run(None, feeds)[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / weights.sum(axis=1)
            out.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
        return np.concatenate(out).astype(np.float32)


def _pair(janus: Any, raw: Any, chunks: list[str]) -> tuple[float, float, float]:
    """Best chunks/s of each side, alternating, plus the worst cosine between their vectors.

    CPU milliseconds per chunk go to stderr too: on a shared machine they
    compare the two sides more fairly than wall-clock rates do.
    """
    best_janus = best_raw = 0.0
    cpu_janus = cpu_raw = float("inf")
    for _ in range(ROUNDS):
        cpu = time.process_time()
        best_janus = max(
            best_janus, ops_per_second(lambda: janus.embed(chunks), len(chunks), repeat=1)
        )
        cpu_janus = min(cpu_janus, time.process_time() - cpu)
        cpu = time.process_time()
        best_raw = max(best_raw, ops_per_second(lambda: raw.embed(chunks), len(chunks), repeat=1))
        cpu_raw = min(cpu_raw, time.process_time() - cpu)
    agreement = float((janus.embed(chunks[:64]) * raw.embed(chunks[:64])).sum(axis=1).min())
    per_chunk = 1000 / len(chunks)
    print(
        f"  {janus.model}: CPU ms/chunk Janus {cpu_janus * per_chunk:.0f}, raw "
        f"{cpu_raw * per_chunk:.0f}; worst cosine Janus vs raw {agreement:.6f}",
        file=sys.stderr,
    )
    return best_janus, best_raw, agreement


def run(workdir: Path, count: int = 512) -> list[BenchRow]:
    """Janus vs. raw for the default runtime and for ``quantize=int8``."""
    chunks = real_chunks(count)
    rows: list[BenchRow] = []
    with embeddings.open(f"minilm://?batch={BATCH}") as janus:
        janus_s, raw_s, _ = _pair(janus, RawMiniLM(), chunks)
        rows.append(
            BenchRow("embeddings", janus.model, "embed 256-token chunks", BATCH, janus_s, raw_s)
        )
    with embeddings.open(f"minilm://?batch={BATCH}&quantize=int8") as janus:
        quantized = minilm.quantize_int8(minilm.onnx_model_file(), workdir)
        janus_s, raw_s, _ = _pair(janus, RawMiniLM(quantized, batch=1), chunks)
        rows.append(
            BenchRow("embeddings", janus.model, "embed 256-token chunks", BATCH, janus_s, raw_s)
        )
    return rows


def main(argv: list[str]) -> int:
    count = int(argv[0]) if argv else 512
    with tempfile.TemporaryDirectory(prefix="janus-bench-embeddings-") as workdir:
        rows = run(Path(workdir), count)
    print(f"{'backend':<28} {'batch':>5} {'janus chunks/s':>15} {'raw chunks/s':>13} {'ratio':>6}")
    for row in rows:
        print(
            f"{row.backend:<28} {row.batch:>5} {row.janus_ops_s:>15.1f} {row.raw_ops_s:>13.1f} "
            f"{row.ratio:>6.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
