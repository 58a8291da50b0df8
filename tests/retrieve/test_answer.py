"""``janus ask`` and ``janus memory`` over the small hand-written corpus."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from retrieve_corpus import (  # noqa: F401 - fixtures
    TENANT,
    Memory,
    extractor_fixture,
    memory_fixture,
    module_pg_url_fixture,
)

from conftest import free_port
from janus_stack.errors import InvalidInputError, NotFoundError
from janus_stack.retrieve.answer import NOT_FOUND, Answerer
from janus_stack.retrieve.extractive import expected_answer, split_sentences
from janus_stack.retrieve.memory import recall


def answerer(memory: Memory, **options: int) -> Answerer:
    return Answerer(memory.janus, retriever=memory.retriever, **options)


def cited_files(answer_sources: list[str]) -> set[str]:
    return {Path(source).name for source in answer_sources}


def test_a_factual_question_is_answered_with_its_sentence_cited(memory: Memory) -> None:
    answer = answerer(memory).ask("In which city does Pierre Durand run his bakery?")

    assert answer.found
    assert answer.answerer == "extractive"
    assert "Lyon" in answer.text
    assert cited_files([c.source for c in answer.citations]) == {"bakery.md"}
    for citation in answer.citations:
        assert f"[{citation.label}]" in answer.text
        hit = next(h for h in answer.hits if h.chunk_id == citation.chunk_id)
        assert citation.quote in " ".join(hit.text.split())


def test_who_questions_prefer_the_sentence_naming_a_person(memory: Memory) -> None:
    answer = answerer(memory).ask("Who won the chess championship of Vienna?")

    assert "Elena Petrova" in answer.text
    assert cited_files([c.source for c in answer.citations]) == {"chess.txt"}


def test_a_question_the_memory_cannot_answer_says_so(memory: Memory) -> None:
    answer = answerer(memory).ask("What is the melting point of tungsten?")

    assert not answer.found
    assert answer.text == NOT_FOUND
    assert answer.citations == []


def test_a_second_round_follows_an_entity_of_the_first_hits(memory: Memory) -> None:
    question = "Where did the colleague of Amara Okafor sail to?"
    one_round = answerer(memory, max_rounds=1).ask(question)
    two_rounds = answerer(memory, max_rounds=2).ask(question)

    assert one_round.rounds == 1
    assert "Henrik Larsen" in two_rounds.followed or two_rounds.rounds == 1
    assert "Lisbon" in two_rounds.text
    assert "voyage.txt" in cited_files([c.source for c in two_rounds.citations])


def test_answers_stay_inside_the_tenant(memory: Memory) -> None:
    answer = answerer(memory).ask("Who sells zorbulite glaze?")

    assert "Kaito" not in answer.text
    assert all(Path(c.source).name != "rival.txt" for c in answer.citations)
    other = answerer(memory).ask("Who sells zorbulite glaze?", tenant="other")
    assert "Kaito Tanaka" in other.text


def test_stream_reports_retrieval_then_the_answer(memory: Memory) -> None:
    events = list(answerer(memory).stream("Who discovered a faint comet in 2019?"))

    assert [e.kind for e in events] == ["retrieval", "token", "answer"]
    assert events[0].data["hits"] > 0
    assert "Amara Okafor" in events[-1].data.text
    assert events[1].data == events[-1].data.text


@pytest.mark.parametrize(
    ("question", "tenant", "error"),
    [
        ("", None, InvalidInputError),
        ("x" * 3000, None, InvalidInputError),
        ("who?", "no-such-tenant", NotFoundError),
        ("who?", "Bad Tenant!", InvalidInputError),
    ],
)
def test_bad_questions_are_clear_errors(
    memory: Memory, question: str, tenant: str | None, error: type[Exception]
) -> None:
    with pytest.raises(error):
        answerer(memory).ask(question, tenant=tenant)


def test_memory_of_a_person_shows_relations_chunks_and_documents(memory: Memory) -> None:
    view = recall(memory.janus, "Henrik Larsen", retriever=memory.retriever)

    assert view.entity is not None
    assert view.entity["name"] == "Henrik Larsen"
    neighbours = {n.name for n in view.neighbours}
    assert neighbours & {"Copenhagen", "Lisbon", "Amara Okafor"}
    for neighbour in view.neighbours:
        assert neighbour.chunk_ids
    documents = {Path(d["source"]).name for d in view.documents}
    assert {"voyage.txt", "observatory.md"} <= documents
    assert view.chunks
    assert json.loads(json.dumps(view.as_dict()))["entity"]["name"] == "Henrik Larsen"


def test_memory_of_an_unknown_topic_still_returns_passages(memory: Memory) -> None:
    view = recall(memory.janus, "tomato growing", retriever=memory.retriever)

    assert view.entity is None or view.entity["name"] != "Henrik Larsen"
    assert "garden.txt" in {Path(hit.source).name for hit in view.chunks}


def test_sentences_split_at_ends_but_not_at_initials() -> None:
    text = "J. R. Smith met Dr. Jones in 1999. They talked.\n\n# Heading\nNext line."
    parts = [text[s:e] for s, e in split_sentences(text)]
    assert parts == ["J. R. Smith met Dr. Jones in 1999.", "They talked.", "# Heading\nNext line."]


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("Where was she born?", "GPE"),
        ("Which river flows through Lyon?", "LOC"),
        ("Who wrote it?", "PERSON"),
        ("When did it launch?", "DATE"),
        ("How many people live there?", "CARDINAL"),
    ],
)
def test_question_words_set_the_expected_answer_type(question: str, kind: str) -> None:
    expected = expected_answer(question)
    assert expected is not None
    assert kind in expected[0]
    assert expected_answer("Describe the sourdough process.") is None


def test_cli_ask_and_memory_print_json(tmp_path: Path) -> None:
    doc = tmp_path / "bakery.md"
    doc.write_text(
        "# Bakery\n\nPierre Durand runs a small bakery in Lyon. He bakes sourdough daily.\n"
    )
    env = {**os.environ, "JANUS_HOME": str(tmp_path / "home")}

    def janus(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "janus_stack", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )

    assert janus("ingest", str(doc), "--json").returncode == 0
    asked = janus("ask", "Where does Pierre Durand run his bakery?", "--json")
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert answer["found"] is True
    assert "Lyon" in answer["answer"]
    assert answer["citations"][0]["document"]["title"] == "Bakery"
    env["JANUS_LLM_URL"] = f"openai+http://127.0.0.1:{free_port()}/v1?model=x&retries=0"
    fallback = janus("ask", "Where does Pierre Durand run his bakery?", "--json")
    assert fallback.returncode == 0, fallback.stderr
    fell_back = json.loads(fallback.stdout)
    assert fell_back["answerer"] == "extractive"
    assert "Lyon" in fell_back["answer"]
    assert any("unavailable" in flag for flag in fell_back["flags"])
    del env["JANUS_LLM_URL"]
    remembered = janus("memory", "Pierre Durand", "--json")
    assert remembered.returncode == 0, remembered.stderr
    assert json.loads(remembered.stdout)["entity"]["name"] == "Pierre Durand"
    empty = janus("ask", "  ")
    assert empty.returncode != 0
    assert "empty" in empty.stderr
    assert "Traceback" not in empty.stderr
