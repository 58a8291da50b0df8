"""A small hand-written memory, ingested once per module and ledger backend.

Test modules import the fixtures (``*_fixture``) from here (a second ``conftest.py`` would
shadow the root one under pytest's default import mode).

Five short documents on distinct topics, with named people and places, in
tenant ``default`` (tagged ``topic=science`` or ``topic=food``), and one in
tenant ``other`` that shares a rare word with a ``default`` document. Two
documents share a person, so a path joins an entity of one to an entity of
the other (Amara Okafor → Henrik Larsen → Copenhagen).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import migrated_database
from janus_stack.config import load_settings
from janus_stack.context import Janus
from janus_stack.ingest.pipeline import IngestOptions, Ingestor
from janus_stack.ingest.spacy_extractor import SpacyEntityExtractor
from janus_stack.retrieve import Retriever

SCIENCE = {
    "observatory.md": "# Atacama Observatory\n\n"
    "Amara Okafor is an astronomer at the Atacama Observatory in Chile. In 2019 Amara "
    "Okafor discovered a faint comet while working with Henrik Larsen on the night shift.\n\n"
    "The observatory sits at high altitude, where the dry air keeps the sky clear.\n",
    "voyage.txt": "Henrik Larsen sailed from Copenhagen to Lisbon aboard the research ship "
    "Nordlys. During the crossing Henrik Larsen measured ocean temperatures every hour.\n",
    "chess.txt": "The chess club of Vienna meets every Tuesday evening. Elena Petrova won "
    "the city championship with a bold queen sacrifice against Tomas Novak.\n",
}
FOOD = {
    "bakery.md": "# Sourdough in Lyon\n\n"
    "Pierre Durand runs a small bakery in Lyon. His sourdough starts with an autolyse of "
    "flour and water, followed by a long cold fermentation. Regulars praise the glossy "
    "zorbulite glaze on the crust.\n",
    "garden.txt": "Growing tomatoes needs full sun, rich well-drained soil and steady "
    "watering. Stake the vines early, pinch off the side shoots, and pick the fruit when "
    "it turns deep red.\n",
}
OTHER = {
    "rival.txt": "Kaito Tanaka sells zorbulite glaze to potters in Osaka. Kaito Tanaka "
    "learned the recipe from his grandmother in Kyoto.\n",
}
TENANT = "default"


@dataclass
class Memory:
    janus: Janus
    retriever: Retriever
    files: dict[str, Path]
    backend: str
    extractor: SpacyEntityExtractor

    def ingest(self, paths: list[Path], tenant: str, tags: dict[str, str] | None = None) -> None:
        ingestor = Ingestor(self.janus, self.janus.embedder, IngestOptions())
        ingestor.projector.extractor = self.extractor
        report = ingestor.ingest(paths, tenant=tenant, tags=tags)
        assert not report.failed, report.as_dict()


@pytest.fixture(scope="session", name="extractor")
def extractor_fixture() -> SpacyEntityExtractor:
    """The spaCy model, loaded once for the session."""
    return SpacyEntityExtractor()


@pytest.fixture(scope="module", name="module_pg_url")
def module_pg_url_fixture(pg_admin: str) -> Iterator[str]:
    """A PostgreSQL database for one module, migrated, dropped afterwards."""
    with migrated_database(pg_admin, f"janus_test_retrieve_{uuid.uuid4().hex[:12]}") as url:
        yield url


def write(folder: Path, docs: dict[str, str]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, text in docs.items():
        paths[name] = folder / name
        paths[name].write_text(text, encoding="utf-8")
    return paths


@pytest.fixture(scope="module", params=["sqlite", "postgresql"], name="memory")
def memory_fixture(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    extractor: SpacyEntityExtractor,
) -> Iterator[Memory]:
    """The corpus, ingested on the embedded stores with a SQLite or a PostgreSQL ledger."""
    home = tmp_path_factory.mktemp(f"retrieve-{request.param}")
    overrides = {"home": str(home)}
    if request.param == "postgresql":
        overrides["relational_url"] = request.getfixturevalue("module_pg_url")
    settings = load_settings(overrides, environ={}, cwd=home)
    docs = home / "docs"
    science, food, other = write(docs, SCIENCE), write(docs, FOOD), write(docs / "other", OTHER)
    with Janus(settings) as janus:
        memory = Memory(
            janus=janus,
            retriever=Retriever(janus, extractor=extractor),
            files={**science, **food, **other},
            backend=request.param,
            extractor=extractor,
        )
        memory.ingest(list(science.values()), TENANT, {"topic": "science"})
        memory.ingest(list(food.values()), TENANT, {"topic": "food"})
        memory.ingest(list(other.values()), "other")
        yield memory
