"""Write a tiny, randomly initialised llama-architecture GGUF for smoke tests.

The model is gibberish by design: ~480 tokens of vocabulary, 2 layers, hidden
size 64, 4 heads, about 0.3 MB. It exercises everything around a model —
loading, chat templating, tokenising any text, streaming, grammars for JSON,
servers — in milliseconds and without downloading anything. The same seed
writes the same bytes, and llama.cpp generates the same text from it at
temperature 0.

Tokenizer: SentencePiece-style (``tokenizer.ggml.model = "llama"``) with
byte fallback: all 256 ``<0xNN>`` byte tokens are in the vocabulary, so any
UTF-8 text tokenises. Pieces are the printable ASCII characters (``▁`` for a
space) and a few words with every prefix, so merges find them. Control
tokens ``<|system|>``, ``<|user|>``, ``<|assistant|>``, ``<|tool|>`` and
``<|end|>`` (the end-of-turn/EOS token) frame the chat template stored in
``tokenizer.chat_template``. Only text pieces have non-zero output rows,
so a greedy answer runs to ``max_tokens`` (or a stop string) unless a
grammar ends it, and it is printable ASCII.

``janus models install tiny-random`` writes one into ``JANUS_HOME/models``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from janus_stack.errors import SlotUnavailableError

NAME = "janus-tiny-random"
FILE_NAME = "janus-tiny-random.gguf"
HIDDEN = 64
LAYERS = 2
HEADS = 4
FEED_FORWARD = 128
DEFAULT_CONTEXT = 4096

CONTROL_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", "<|tool|>")
END_TOKEN = "<|end|>"
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
WORDS = (
    "the",
    "and",
    "of",
    "to",
    "in",
    "is",
    "that",
    "it",
    "for",
    "on",
    "with",
    "as",
    "was",
    "at",
    "by",
    "an",
    "be",
    "this",
    "are",
    "or",
    "from",
    "not",
    "but",
    "have",
    "had",
    "his",
    "her",
    "they",
    "you",
    "we",
    "what",
    "which",
    "when",
    "who",
    "will",
    "would",
    "there",
    "their",
    "answer",
    "question",
    "json",
    "true",
    "false",
    "null",
    "ok",
    "yes",
    "no",
    "model",
    "janus",
    "memory",
    "document",
    "chunk",
    "hello",
    "world",
    "moon",
    "apollo",
)

# GGUF token types (gguf.TokenType): the numbers are part of the file format.
_NORMAL, _UNKNOWN, _CONTROL, _BYTE = 1, 2, 3, 6


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and token types, in id order."""
    tokens = ["<unk>", "<s>", END_TOKEN, *CONTROL_TOKENS]
    types = [_UNKNOWN, _CONTROL, _CONTROL] + [_CONTROL] * len(CONTROL_TOKENS)
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [_BYTE] * 256
    pieces: dict[str, None] = {}
    for code in range(33, 127):
        pieces[chr(code)] = None
    pieces["\u2581"] = None
    for word in WORDS:
        spelled = "\u2581" + word
        for end in range(2, len(spelled) + 1):
            pieces[spelled[:end]] = None
    tokens += list(pieces)
    types += [_NORMAL] * len(pieces)
    scores = [0.0] * (len(tokens) - len(pieces)) + [
        float(len(piece)) - i / 10_000 for i, piece in enumerate(pieces)
    ]
    return tokens, scores, types


def write_tiny_gguf(path: str | Path, *, seed: int = 0, n_ctx: int = DEFAULT_CONTEXT) -> Path:
    """Write the tiny model to ``path`` (a file) and return the path.

    Raises:
        SlotUnavailableError: the ``gguf`` package (the ``llm`` extra) is missing.
    """
    try:
        import gguf  # noqa: PLC0415 - optional, in the llm extra
    except ImportError as exc:
        raise SlotUnavailableError(
            "llm slot: writing a GGUF needs the gguf package",
            hint="pip install 'janus-stack[llm]'  (or: pip install gguf)",
        ) from exc
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tokens, scores, types = vocabulary()
    rng = np.random.default_rng(seed)

    def matrix(rows: int, cols: int, scale: float) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * scale).astype(np.float16)

    partial = target.with_name(target.name + ".partial")
    writer = gguf.GGUFWriter(str(partial), arch="llama")
    writer.add_name(NAME)
    writer.add_context_length(n_ctx)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FEED_FORWARD)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(HEADS)
    writer.add_rope_dimension_count(HIDDEN // HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)

    vocab = len(tokens)
    writer.add_tensor("token_embd.weight", matrix(vocab, HIDDEN, 1.0))
    for layer in range(LAYERS):
        prefix = f"blk.{layer}"
        writer.add_tensor(f"{prefix}.attn_norm.weight", np.ones(HIDDEN, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"{prefix}.{name}.weight", matrix(HIDDEN, HIDDEN, 0.2))
        writer.add_tensor(f"{prefix}.ffn_norm.weight", np.ones(HIDDEN, dtype=np.float32))
        writer.add_tensor(f"{prefix}.ffn_gate.weight", matrix(FEED_FORWARD, HIDDEN, 0.2))
        writer.add_tensor(f"{prefix}.ffn_up.weight", matrix(FEED_FORWARD, HIDDEN, 0.2))
        writer.add_tensor(f"{prefix}.ffn_down.weight", matrix(HIDDEN, FEED_FORWARD, 0.2))
    writer.add_tensor("output_norm.weight", np.ones(HIDDEN, dtype=np.float32))
    # Only the text pieces can win: control and byte tokens get zero logits
    # while the pieces' spread far above zero. So a greedy answer never ends
    # by itself, and the model never emits raw bytes that are not UTF-8
    # (llama-cpp-python's streaming slows down quadratically on those).
    output = matrix(vocab, HIDDEN, 1.0)
    output[: types.index(_NORMAL)] = 0  # the pieces come last
    writer.add_tensor("output.weight", output)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.replace(target)
    return target
