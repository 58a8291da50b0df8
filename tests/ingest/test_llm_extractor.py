"""The LLM entity extractor: real engine (tiny random GGUF) and a scripted answer.

The random-weight model cannot name anything that is in the text, so with
it every chunk must fall back to spaCy and give exactly spaCy's result. The
happy path (a model that names real entities) is checked with a scripted
backend that goes through the real llm slot machinery: request validation,
JSON-schema check and retries.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from janus_stack.errors import ConfigError, InvalidInputError
from janus_stack.ingest.entities import ChunkText
from janus_stack.ingest.llm_extractor import LLMEntityExtractor, choose_extractor, locate
from janus_stack.ingest.spacy_extractor import SpacyEntityExtractor
from janus_stack.slots import llm
from janus_stack.slots.llm import LanguageModel
from janus_stack.slots.llm.types import Request, Usage
from janus_stack.urls import SlotURL

TEXT = "Henrik Larsen sailed from Copenhagen to Lisbon aboard the research ship Nordlys."
CHUNK = ChunkText(chunk_id="c1", doc_id="d1", tenant="default", text=TEXT)


class ScriptedModel(LanguageModel):
    """Answers each call with the next scripted text (a backend for this test only)."""

    backend: ClassVar[str] = "scripted"

    def __init__(self, answers: list[str]) -> None:
        super().__init__(SlotURL.parse("llm", "scripted://"), json_retries=1)
        self.answers = answers
        self.calls = 0

    @property
    def model(self) -> str:
        return "scripted"

    def _open(self) -> None:
        pass

    def _close(self) -> None:
        pass

    def _generate(self, request: Request) -> Iterator[str | Usage]:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        yield answer
        yield Usage(finish_reason="stop", model="scripted", prompt_tokens=10, completion_tokens=5)


@pytest.fixture(scope="module")
def spacy() -> SpacyEntityExtractor:
    return SpacyEntityExtractor()


def names(extraction: object) -> set[str]:
    return {entity.name for entity in extraction.entities}  # type: ignore[attr-defined]


def test_names_become_spans_and_relations_link_them() -> None:
    data = {
        "entities": [
            {"name": "henrik larsen", "type": "PERSON"},
            {"name": "Lisbon", "type": "GPE"},
            {"name": "Atlantis", "type": "GPE"},
            {"name": "Lisbon", "type": "GPE"},
        ],
        "relations": [
            {"source": "Henrik Larsen", "relation": "sailed to", "target": "Lisbon"},
            {"source": "Henrik Larsen", "relation": "RULES", "target": "Atlantis"},
        ],
    }

    findings = locate(CHUNK, data)

    spans = [(TEXT[m.start : m.end], m.label) for m in findings.mentions]
    assert spans == [("Henrik Larsen", "PERSON"), ("Lisbon", "GPE")]
    assert [(r.source, r.target, r.type) for r in findings.relations] == [(0, 1, "SAILED_TO")]
    assert locate(CHUNK, ["not", "an", "object"]).mentions == []


def test_a_model_naming_real_entities_is_used(spacy: SpacyEntityExtractor) -> None:
    answer = {
        "entities": [
            {"name": "Henrik Larsen", "type": "PERSON"},
            {"name": "Copenhagen", "type": "GPE"},
            {"name": "Nordlys", "type": "PRODUCT"},
        ],
        "relations": [
            {"source": "Henrik Larsen", "relation": "SAILED_FROM", "target": "Copenhagen"}
        ],
    }
    with ScriptedModel(["not json at all", json.dumps(answer)]) as model:
        extractor = LLMEntityExtractor(model, spacy)
        extraction = extractor.extract([CHUNK])

    assert extractor.fallbacks == 0
    assert model.calls == 2, "the invalid first answer is retried"
    assert names(extraction) == {"Henrik Larsen", "Copenhagen", "Nordlys"}
    assert {r.type for r in extraction.relations} == {"SAILED_FROM"}


def test_invalid_json_after_the_retries_falls_back_to_spacy(spacy: SpacyEntityExtractor) -> None:
    with ScriptedModel(['{"entities": "nope"}']) as model:
        extractor = LLMEntityExtractor(model, spacy)
        extraction = extractor.extract([CHUNK])

    assert extractor.fallbacks == 1
    assert extraction == spacy.extract([CHUNK])


def test_the_real_engine_falls_back_chunk_by_chunk(
    spacy: SpacyEntityExtractor, tmp_path: Path
) -> None:
    pytest.importorskip("llama_cpp", reason="the llm extra (llama-cpp-python) is not installed")
    from janus_stack.slots.llm.tiny_gguf import write_tiny_gguf  # noqa: PLC0415

    gguf = write_tiny_gguf(tmp_path / "tiny.gguf")
    chunks = [
        CHUNK,
        ChunkText("c2", "d2", "default", "Elena Petrova won the chess championship of Vienna."),
    ]
    with llm.open(f"llamacpp://{gguf}?n_ctx=4096&threads=1&seed=0") as model:
        extractor = LLMEntityExtractor(model, spacy, max_tokens=64)
        extraction = extractor.extract(chunks)

    assert extractor.fallbacks == len(chunks), "random weights cannot name what is in the text"
    assert extraction == spacy.extract(chunks)


def test_choosing_an_extractor() -> None:
    assert isinstance(choose_extractor("spacy"), SpacyEntityExtractor)
    with pytest.raises(InvalidInputError, match="unknown entity extractor"):
        choose_extractor("regex")
    with llm.open("none://") as none, pytest.raises(ConfigError, match="needs a language model"):
        choose_extractor("llm", none)


def test_cli_refuses_the_llm_extractor_without_a_model(tmp_path: Path) -> None:
    doc = tmp_path / "a.txt"
    doc.write_text(TEXT)
    result = subprocess.run(
        [sys.executable, "-m", "janus_stack", "ingest", str(doc), "--extractor", "llm"],
        capture_output=True,
        text=True,
        env={**os.environ, "JANUS_HOME": str(tmp_path / "home")},
        timeout=300,
        check=False,
    )
    assert result.returncode != 0
    assert "needs a language model" in result.stderr
    assert "Traceback" not in result.stderr
