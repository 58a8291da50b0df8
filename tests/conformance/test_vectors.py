"""Conformance suite of the vectors slot, run over every backend through one fixture.

Backends: Qdrant Edge (embedded default), the server adapter over
qdrant-client's local mode (its stand-in for a server), and a real Qdrant
server when ``JANUS_TEST_QDRANT_URL`` is set. Expected results are computed
independently with numpy (cosine over the tenant's points), never by asking
another backend.
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient

from conftest import free_port
from janus_stack.errors import (
    ClosedError,
    InvalidInputError,
    SlotUnavailableError,
    SlotURLError,
)
from janus_stack.slots import vectors
from janus_stack.slots.vectors import (
    Range,
    VectorFilter,
    VectorHit,
    VectorIndex,
    VectorPoint,
)
from janus_stack.slots.vectors.edge import QdrantEdgeVectors
from janus_stack.slots.vectors.qdrant import QdrantLocalVectors, QdrantVectors
from janus_stack.urls import SlotURL

pytestmark = [
    pytest.mark.filterwarnings("ignore:Failed to obtain server version:UserWarning"),
    pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection:UserWarning"),
    pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning"),
    pytest.mark.filterwarnings("ignore:Local mode performs exact:UserWarning"),
]

DIM = 16
SERVER_ENV = "JANUS_TEST_QDRANT_URL"
OpenIndex = Callable[..., VectorIndex]


# -- fixtures -------------------------------------------------------------------


@pytest.fixture
def ram_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder on tmpfs when there is one.

    qdrant-client's local mode commits SQLite once per point; on a virtual
    disk with slow fsync that is ~12 ms a point, which would make the suite
    crawl without testing anything more.
    """
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="janus-vectors-", dir=shm))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _url_for(backend: str, tmp_path: Path, ram_dir: Path, collection: str) -> str:
    if backend == "qdrant+edge":
        return f"qdrant+edge://{tmp_path}/vectors?collection={collection}"
    if backend == "qdrant+local":
        return f"qdrant+local://{ram_dir}/local?collection={collection}"
    server = os.environ.get(SERVER_ENV)
    if not server:
        # A Qdrant server is not one of this machine's services: skip even in CI.
        pytest.skip(f"no Qdrant server: set {SERVER_ENV}=http://host:6333 to run against one")
    separator = "&" if "?" in server else "?"
    return f"{server}{separator}collection={collection}"


@pytest.fixture(params=["qdrant+edge", "qdrant+local", "qdrant-server"])
def open_index(
    request: pytest.FixtureRequest, tmp_path: Path, ram_dir: Path
) -> Iterator[OpenIndex]:
    """Open (or reopen) the index under test; everything opened is closed afterwards."""
    collection = f"janus_test_{uuid.uuid4().hex[:12]}"
    url = _url_for(request.param, tmp_path, ram_dir, collection)
    opened: list[VectorIndex] = []

    def open_(dim: int = DIM) -> VectorIndex:
        index = vectors.open(SlotURL.parse("vectors", url), dim=dim).open()
        opened.append(index)
        return index

    yield open_
    for index in opened:
        index.close()
    if request.param == "qdrant-server":
        server = SlotURL.parse("vectors", url)
        client = QdrantClient(url=server.without_query(), api_key=server.query.get("api_key"))
        client.delete_collection(collection)
        client.close()


@pytest.fixture
def index(open_index: OpenIndex) -> VectorIndex:
    return open_index()


# -- helpers --------------------------------------------------------------------


def make_points(
    tenant: str, count: int, *, seed: int, extra: Callable[[int], dict[str, Any]] | None = None
) -> list[VectorPoint]:
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((count, DIM)).tolist()
    points = []
    for i, row in enumerate(rows):
        payload: dict[str, Any] = {"tenant": tenant, "doc_id": f"doc{i % 4}", "n": i}
        if extra:
            payload.update(extra(i))
        points.append(VectorPoint(str(uuid.uuid4()), row, payload))
    return points


def expected_ranking(points: list[VectorPoint], query: list[float], limit: int) -> list[str]:
    if not points:
        return []
    matrix = np.asarray([p.vector for p in points], dtype=np.float64)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    q = np.asarray(query) / np.linalg.norm(query)
    order = np.argsort(-(matrix @ q))[:limit]
    return [points[i].id for i in order]


def ids_of(hits: list[VectorHit]) -> list[str]:
    return [hit.id for hit in hits]


def query_near(point: VectorPoint, seed: int) -> list[float]:
    noise = np.random.default_rng(seed).standard_normal(DIM) * 0.3
    return [float(x) for x in np.asarray(point.vector) + noise]


# -- search ---------------------------------------------------------------------


def test_search_ranks_by_cosine_within_the_tenant(index: VectorIndex) -> None:
    mine = make_points("acme", 40, seed=1)
    others = make_points("globex", 40, seed=2)
    assert index.upsert(mine + others) == 80
    for k, target in enumerate(mine[:5]):
        query = query_near(target, seed=100 + k)
        hits = index.search(query, VectorFilter("acme"), limit=10)
        assert ids_of(hits) == expected_ranking(mine, query, 10)
        assert hits[0].id == target.id
        cosine = np.dot(target.vector, query) / (
            np.linalg.norm(target.vector) * np.linalg.norm(query)
        )
        assert hits[0].score == pytest.approx(cosine, abs=1e-5)
        assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
        assert all(hit.payload["tenant"] == "acme" for hit in hits)


def test_search_returns_vectors_only_when_asked_and_payloads_unless_refused(
    index: VectorIndex,
) -> None:
    points = make_points("acme", 5, seed=3)
    index.upsert(points)
    plain = index.search(points[0].vector, VectorFilter("acme"), limit=1)
    assert plain[0].vector is None
    full = index.search(points[0].vector, VectorFilter("acme"), limit=1, with_vectors=True)
    stored = np.asarray(full[0].vector)
    original = np.asarray(points[0].vector)
    assert stored == pytest.approx(original / np.linalg.norm(original), abs=1e-5)
    assert full[0].payload == points[0].payload
    bare = index.search(points[0].vector, VectorFilter("acme"), limit=1, with_payload=False)
    assert (bare[0].id, bare[0].score, bare[0].payload) == (plain[0].id, plain[0].score, {})


def test_limit_larger_than_the_tenant_returns_all(index: VectorIndex) -> None:
    index.upsert(make_points("acme", 7, seed=4) + make_points("globex", 7, seed=5))
    assert len(index.search([1.0] * DIM, VectorFilter("acme"), limit=100)) == 7


# -- tenants --------------------------------------------------------------------


def test_tenant_isolation(index: VectorIndex) -> None:
    acme = make_points("acme", 12, seed=6)
    globex = make_points("globex", 12, seed=7)
    index.upsert(acme + globex)
    globex_ids = {p.id for p in globex}
    # a globex vector searched inside acme never returns a globex point
    hits = index.search(globex[0].vector, VectorFilter("acme"), limit=50)
    assert {h.id for h in hits} == {p.id for p in acme}
    assert index.count(VectorFilter("acme")) == 12
    assert not globex_ids & {h.id for h in index.iter_points(VectorFilter("acme"))}
    assert index.retrieve("acme", [globex[0].id]) == []
    assert index.search(globex[0].vector, VectorFilter("acme", ids=[globex[0].id])) == []
    # deletes scoped to acme cannot reach globex, even when naming its ids
    index.delete_ids("acme", list(globex_ids))
    index.delete(VectorFilter("acme", equals={"doc_id": "doc1"}))
    assert index.count(VectorFilter("globex")) == 12
    index.delete(VectorFilter("acme"))
    assert index.count(VectorFilter("acme")) == 0
    assert index.count(VectorFilter("globex")) == 12
    assert index.count(VectorFilter("initech")) == 0


# -- filters --------------------------------------------------------------------


def _meta(i: int) -> dict[str, Any]:
    return {"lang": "en" if i % 3 else "fr", "year": 2000 + i, "weight": i / 4, "ok": i % 2 == 0}


FILTER_CASES: list[tuple[VectorFilter, Callable[[dict[str, Any]], bool]]] = [
    (VectorFilter("acme", equals={"lang": "fr"}), lambda p: p["lang"] == "fr"),
    (VectorFilter("acme", equals={"ok": True}), lambda p: p["ok"]),
    (VectorFilter("acme", equals={"year": 2005}), lambda p: p["year"] == 2005),
    (
        VectorFilter("acme", equals={"doc_id": ["doc0", "doc2"]}),
        lambda p: p["doc_id"] in ("doc0", "doc2"),
    ),
    (
        VectorFilter("acme", equals={"year": [2001, 2003, 2999]}),
        lambda p: p["year"] in (2001, 2003),
    ),
    (VectorFilter("acme", ranges={"year": Range(gte=2010)}), lambda p: p["year"] >= 2010),
    (VectorFilter("acme", ranges={"year": Range(gt=2010)}), lambda p: p["year"] > 2010),
    (
        VectorFilter("acme", ranges={"weight": Range(gt=1.0, lte=3.5)}),
        lambda p: 1.0 < p["weight"] <= 3.5,
    ),
    (VectorFilter("acme", ranges={"weight": Range(lt=2)}), lambda p: p["weight"] < 2),
    (
        VectorFilter("acme", equals={"lang": "en", "ok": False}, ranges={"n": Range(lte=15)}),
        lambda p: p["lang"] == "en" and not p["ok"] and p["n"] <= 15,
    ),
    (VectorFilter("acme", equals={"lang": "de"}), lambda p: False),
    (VectorFilter("acme", equals={"lang": []}), lambda p: False),
]


def test_equality_and_range_filters(index: VectorIndex) -> None:
    acme = make_points("acme", 24, seed=8, extra=_meta)
    decoys = make_points("globex", 24, seed=9, extra=_meta)  # same metadata, other tenant
    index.upsert(acme + decoys)
    query = query_near(acme[0], seed=10)
    for flt, predicate in FILTER_CASES:
        expected = [p for p in acme if predicate(dict(p.payload))]
        assert index.count(flt) == len(expected), flt
        assert {h.id for h in index.iter_points(flt, batch=5)} == {p.id for p in expected}, flt
        hits = index.search(query, flt, limit=5)
        assert ids_of(hits) == expected_ranking(expected, query, 5), flt


def test_ids_filter_combines_with_metadata(index: VectorIndex) -> None:
    acme = make_points("acme", 10, seed=11)
    index.upsert(acme)
    chosen = [p.id for p in acme[:6]]
    flt = VectorFilter("acme", ids=chosen, equals={"doc_id": "doc1"})
    assert {h.id for h in index.iter_points(flt)} == {
        p.id for p in acme[:6] if p.payload["doc_id"] == "doc1"
    }
    assert index.count(VectorFilter("acme", ids=[])) == 0
    assert index.search(acme[0].vector, VectorFilter("acme", ids=[])) == []
    assert index.scroll(VectorFilter("acme", ids=[])) == ([], None)


# -- writes ---------------------------------------------------------------------


def test_delete_by_ids_and_by_filter(index: VectorIndex) -> None:
    acme = make_points("acme", 20, seed=12)
    index.upsert(acme)
    index.delete_ids("acme", [acme[0].id, acme[1].id, str(uuid.uuid4())])
    assert index.count(VectorFilter("acme")) == 18
    assert index.retrieve("acme", [acme[0].id, acme[2].id]) == index.retrieve("acme", [acme[2].id])
    index.delete(VectorFilter("acme", equals={"doc_id": "doc3"}))  # n = 3, 7, 11, 15, 19
    assert index.count(VectorFilter("acme")) == 13
    index.delete(VectorFilter("acme", ranges={"n": Range(gte=16)}))  # 16, 17, 18 remain
    left = {h.payload["n"] for h in index.iter_points(VectorFilter("acme"))}
    assert left == {n for n in range(2, 16) if n % 4 != 3}
    index.delete_ids("acme", [])
    assert index.count(VectorFilter("acme")) == len(left)


def test_upsert_is_idempotent_by_id(index: VectorIndex) -> None:
    points = make_points("acme", 30, seed=13)
    index.upsert(points)
    index.upsert(points)
    assert index.count(VectorFilter("acme")) == 30
    first = points[0]
    moved = VectorPoint(first.id, points[1].vector, {**first.payload, "doc_id": "changed"})
    index.upsert([moved, moved])
    assert index.count(VectorFilter("acme")) == 30
    (hit,) = index.retrieve("acme", [first.id])
    assert hit.payload["doc_id"] == "changed"
    assert index.search(points[1].vector, VectorFilter("acme", ids=[first.id]))[0].score == (
        pytest.approx(1.0, abs=1e-5)
    )


def test_upsert_spans_several_batches(index: VectorIndex) -> None:
    points = make_points("acme", index.upsert_batch * 2 + 7, seed=14)
    assert index.upsert(points) == len(points)
    assert index.count(VectorFilter("acme")) == len(points)


def test_scroll_pagination_is_complete_without_duplicates(index: VectorIndex) -> None:
    acme = make_points("acme", 53, seed=15)
    index.upsert(acme + make_points("globex", 20, seed=16))
    seen: list[str] = []
    offset: str | None = None
    pages = 0
    while True:
        page, offset = index.scroll(VectorFilter("acme"), limit=10, offset=offset)
        seen.extend(ids_of(page))
        pages += 1
        assert len(page) <= 10
        if offset is None:
            break
    assert pages >= 6
    assert len(seen) == len(set(seen)) == 53
    assert set(seen) == {p.id for p in acme}
    assert all(h.score == 0.0 and h.vector is None for h in index.iter_points(VectorFilter("acme")))
    with_vectors = next(index.iter_points(VectorFilter("acme"), with_vectors=True))
    assert with_vectors.vector is not None and len(with_vectors.vector) == DIM


def test_retrieve_keeps_the_order_asked_and_skips_missing(index: VectorIndex) -> None:
    acme = make_points("acme", 6, seed=17)
    index.upsert(acme)
    wanted = [acme[4].id, str(uuid.uuid4()), acme[1].id.upper(), acme[4].id]
    hits = index.retrieve("acme", wanted, with_vectors=True)
    assert ids_of(hits) == [acme[4].id, acme[1].id]
    assert hits[0].payload == acme[4].payload
    assert hits[0].vector is not None


def test_reopen_keeps_points(open_index: OpenIndex) -> None:
    first = open_index()
    points = make_points("acme", 25, seed=18)
    first.upsert(points)
    query = query_near(points[3], seed=19)
    before = ids_of(first.search(query, VectorFilter("acme"), limit=5))
    first.close()
    again = open_index()
    assert again.count(VectorFilter("acme")) == 25
    assert ids_of(again.search(query, VectorFilter("acme"), limit=5)) == before
    again.upsert(points[:3])  # indexes and collection exist already: open stays idempotent
    assert again.count(VectorFilter("acme")) == 25


def test_probe_round_trips_and_leaves_nothing(index: VectorIndex) -> None:
    index.upsert(make_points("acme", 3, seed=20))
    index.probe()
    index.probe()
    assert index.count(VectorFilter("acme")) == 3
    assert index._count(VectorFilter(vectors.PROBE_TENANT)) == 0


# -- bad input ------------------------------------------------------------------


def _point(vector: Any = None, *, id: Any = None, payload: Any = None) -> VectorPoint:
    return VectorPoint(
        id=str(uuid.uuid4()) if id is None else id,
        vector=[0.5] * DIM if vector is None else vector,
        payload={"tenant": "acme"} if payload is None else payload,
    )


BAD_POINTS: list[tuple[VectorPoint, str]] = [
    (_point([0.5] * (DIM - 1)), f"{DIM - 1} dimensions"),
    (_point([0.5] * (DIM + 1)), f"expects {DIM}"),
    (_point([math.nan] + [0.5] * (DIM - 1)), "NaN"),
    (_point([math.inf] + [0.5] * (DIM - 1)), "infinite"),
    (_point([1e39] + [0.5] * (DIM - 1)), "float32"),
    (_point([0.0] * DIM), "zeros"),
    (_point(["x"] + [0.5] * (DIM - 1)), "non-number"),
    (_point("not a vector"), "sequence of numbers"),
    (_point(id="not-a-uuid"), "not a UUID"),
    (_point(id=42), "not a UUID"),
    (_point(payload={"doc_id": "d"}), "no 'tenant'"),
    (_point(payload={"tenant": "bad tenant!"}), "invalid tenant"),
    (_point(payload={"tenant": "-x"}), "invalid tenant"),
    (_point(payload={"tenant": 7}), "invalid tenant"),
    (_point(payload={"tenant": "acme", "when": object()}), "not JSON"),
    (_point(payload={"tenant": "acme", "x": {"y": [math.nan]}}), "not a finite number"),
    (_point(payload=["tenant"]), "must be a mapping"),
]


def test_bad_points_are_refused_before_anything_is_written(index: VectorIndex) -> None:
    good = make_points("acme", 5, seed=21)
    for bad, fragment in BAD_POINTS:
        with pytest.raises(InvalidInputError, match="point 5") as caught:
            index.upsert([*good, bad])
        assert fragment in str(caught.value), (fragment, str(caught.value))
        assert index.count(VectorFilter("acme")) == 0


def test_bad_calls_are_refused(index: VectorIndex) -> None:
    vector = [0.5] * DIM
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: index.search([0.5] * 3, VectorFilter("acme")), "3 dimensions"),
        (lambda: index.search([math.nan] * DIM, VectorFilter("acme")), "NaN"),
        (lambda: index.search(vector, VectorFilter("")), "invalid tenant"),
        (lambda: index.search(vector, VectorFilter("acme"), limit=0), "limit"),
        (
            lambda: index.search(vector, VectorFilter("acme", equals={"w": 1.5})),  # type: ignore[dict-item]
            "cannot be matched",
        ),
        (lambda: index.search(vector, VectorFilter("acme", equals={"w": [1, "a"]})), "any-of"),
        (lambda: index.search(vector, VectorFilter("acme", equals={"tenant": "x"})), "tenant"),
        (lambda: index.count(VectorFilter("acme", ranges={"n": Range()})), "no bound"),
        (lambda: index.count(VectorFilter("acme", ranges={"n": Range(gt=math.nan)})), "finite"),
        (lambda: index.count(VectorFilter("acme", ranges={"n": (1, 2)})), "expected a Range"),  # type: ignore[dict-item]
        (lambda: index.delete(VectorFilter("acme", ids="abc")), "list of UUID"),
        (lambda: index.delete(VectorFilter("acme", ids=["nope"])), "not a UUID"),
        (lambda: index.delete_ids("no such tenant", []), "invalid tenant"),
        (lambda: index.scroll(VectorFilter("acme"), offset="nope"), "not a UUID"),
        (lambda: index.scroll(VectorFilter("acme"), limit=10**6), "limit"),
        (lambda: index.retrieve("acme", ["nope"]), "not a UUID"),
        (lambda: index.upsert(_point()), "sequence of VectorPoint"),  # type: ignore[arg-type]
        (lambda: index.count("acme"), "VectorFilter"),  # type: ignore[arg-type]
    ]
    for call, fragment in cases:
        with pytest.raises(InvalidInputError) as caught:
            call()
        assert fragment in str(caught.value)


def test_dimension_mismatch_on_reopen_is_refused(open_index: OpenIndex) -> None:
    first = open_index(dim=DIM)
    first.upsert(make_points("acme", 3, seed=22))
    first.close()
    with pytest.raises(SlotUnavailableError, match=rf"{DIM * 2}-d") as caught:
        open_index(dim=DIM * 2)
    assert caught.value.hint and "model" in caught.value.hint
    assert open_index(dim=DIM).count(VectorFilter("acme")) == 3  # nothing was changed


def test_use_after_close_raises_closed_error(index: VectorIndex) -> None:
    index.close()
    index.close()  # idempotent
    flt = VectorFilter("acme")
    calls: list[Callable[[], object]] = [
        lambda: index.upsert([_point()]),
        lambda: index.search([0.5] * DIM, flt),
        lambda: index.count(flt),
        lambda: index.delete(flt),
        lambda: index.scroll(flt),
        lambda: index.retrieve("acme", []),
        lambda: list(index.iter_points(flt)),
        index.probe,
        index.compact,
    ]
    for call in calls:
        with pytest.raises(ClosedError):
            call()


def test_compact_keeps_live_points(index: VectorIndex) -> None:
    points = make_points("acme", 40, seed=23)
    index.upsert(points)
    index.delete(VectorFilter("acme", ranges={"n": Range(lt=30)}))
    index.compact()
    assert {h.payload["n"] for h in index.iter_points(VectorFilter("acme"))} == set(range(30, 40))


# -- URLs and the factory -------------------------------------------------------


def test_factory_picks_the_backend_by_scheme(tmp_path: Path) -> None:
    cases = {
        f"qdrant+edge://{tmp_path}/v": QdrantEdgeVectors,
        f"qdrant+local://{tmp_path}/l": QdrantLocalVectors,
        "http://127.0.0.1:6333?api_key=env:NOPE_UNUSED&collection=c1": QdrantVectors,
        "https://qdrant.example:6333": QdrantVectors,
    }
    for raw, cls in cases.items():
        environ = {"NOPE_UNUSED": "secret"}
        backend = vectors.open(SlotURL.parse("vectors", raw, environ=environ), dim=8)
        assert type(backend) is cls
        assert not backend.is_open  # constructing does no I/O
    assert set(vectors.ACCEPTED_SCHEMES) == {"qdrant+edge", "http", "https", "qdrant+local"}
    edge = vectors.open(SlotURL.parse("vectors", f"qdrant+edge://{tmp_path}/v"))
    assert edge.embedded and edge.dim == 384 and edge.collection == "janus_chunks"
    assert not (tmp_path / "v").exists()


@pytest.mark.parametrize(
    "raw",
    [
        "qdrant://localhost:6334",
        "redis://localhost:6379",
        "qdrant+edge:///tmp/v?collection=bad/name",
        "qdrant+edge:///tmp/v?colection=typo",
        "http://localhost:6333?hnsw_ef=many",
        "http://localhost:6333?timeout=0",
    ],
)
def test_bad_urls_raise_slot_url_error(raw: str) -> None:
    with pytest.raises(SlotURLError):
        vectors.open(SlotURL.parse("vectors", raw))


def test_bad_dim_is_refused(tmp_path: Path) -> None:
    for dim in (0, -3, 10**6):
        with pytest.raises(InvalidInputError, match="dim"):
            vectors.open(SlotURL.parse("vectors", f"qdrant+edge://{tmp_path}/v"), dim=dim)


def test_unreachable_server_is_slot_unavailable() -> None:
    url = SlotURL.parse("vectors", f"http://127.0.0.1:{free_port()}?api_key=sekret&timeout=2")
    backend = vectors.open(url, dim=8)
    with pytest.raises(SlotUnavailableError) as caught:
        backend.open()
    assert "127.0.0.1" in str(caught.value)
    assert "sekret" not in str(caught.value)


def test_a_given_client_is_used_and_left_open(tmp_path: Path, ram_dir: Path) -> None:
    client = QdrantClient(path=str(ram_dir / "given"))
    url = SlotURL.parse("vectors", f"qdrant+local://{tmp_path}/unused")
    with QdrantVectors(url, dim=DIM, client=client) as index:
        index.upsert(make_points("acme", 4, seed=24))
    assert client.count("janus_chunks").count == 4  # still usable: not closed by the adapter
    client.close()
    assert not (tmp_path / "unused").exists()


# -- Qdrant Edge: processes -----------------------------------------------------

_HOLDER = textwrap.dedent(
    """
    import sys, uuid
    from janus_stack.slots import vectors
    from janus_stack.urls import SlotURL

    index = vectors.open(SlotURL.parse("vectors", sys.argv[1]), dim=int(sys.argv[2])).open()
    if sys.argv[3] == "write":
        points = [
            vectors.VectorPoint(str(uuid.uuid4()), [1.0 + i] + [0.5] * (int(sys.argv[2]) - 1),
                                {"tenant": "acme", "n": i})
            for i in range(300)
        ]
        index.upsert(points)
    print("ready", flush=True)
    sys.stdin.readline()
    """
)


def _start_holder(url: str, mode: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, url, str(DIM), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_edge_folder_held_by_another_process_is_refused_clearly(tmp_path: Path) -> None:
    url = f"qdrant+edge://{tmp_path}/held"
    proc = _start_holder(url, "hold")
    try:
        with pytest.raises(SlotUnavailableError, match="another") as caught:
            vectors.open(SlotURL.parse("vectors", url), dim=DIM).open()
        assert str(tmp_path / "held" / "janus_chunks") in str(caught.value)
    finally:
        proc.communicate("\n", timeout=30)
    with vectors.open(SlotURL.parse("vectors", url), dim=DIM) as index:  # released on exit
        assert index.count(VectorFilter("acme")) == 0


def test_edge_second_open_in_the_same_process_is_refused(tmp_path: Path) -> None:
    url = SlotURL.parse("vectors", f"qdrant+edge://{tmp_path}/v")
    with vectors.open(url, dim=DIM), pytest.raises(SlotUnavailableError, match="in use"):
        vectors.open(url, dim=DIM).open()


def test_edge_killed_process_loses_no_acknowledged_upsert(tmp_path: Path) -> None:
    url = f"qdrant+edge://{tmp_path}/crash"
    proc = _start_holder(url, "write")  # "ready" is printed after upsert() returned
    proc.kill()  # SIGKILL: no close(), no flush()
    proc.wait(timeout=30)
    with vectors.open(SlotURL.parse("vectors", url), dim=DIM) as index:
        assert index.count(VectorFilter("acme")) == 300
        assert {h.payload["n"] for h in index.iter_points(VectorFilter("acme"))} == set(range(300))


# -- congruence: embedded engine vs. the server adapter -------------------------


def test_edge_and_server_adapter_agree(tmp_path: Path, ram_dir: Path) -> None:
    """The same calls on Qdrant Edge and on the qdrant-client adapter give the same answers."""
    edge = vectors.open(SlotURL.parse("vectors", f"qdrant+edge://{tmp_path}/e"), dim=DIM)
    server = vectors.open(SlotURL.parse("vectors", f"qdrant+local://{ram_dir}/l"), dim=DIM)
    acme = make_points("acme", 60, seed=30, extra=_meta)
    globex = make_points("globex", 30, seed=31, extra=_meta)
    filters = [
        VectorFilter("acme"),
        VectorFilter("acme", equals={"lang": "en"}),
        VectorFilter("acme", equals={"doc_id": ["doc1", "doc2"]}, ranges={"year": Range(lt=2040)}),
        VectorFilter("acme", ranges={"weight": Range(gte=2.5, lt=10)}, equals={"ok": True}),
        VectorFilter("acme", ids=[p.id for p in acme[::3]]),
        VectorFilter("globex"),
    ]
    queries = [query_near(acme[k], seed=40 + k) for k in (0, 7, 21, 44)]
    with edge, server:
        for index in (edge, server):
            index.upsert(acme + globex)
            index.upsert(acme[:10])  # idempotent re-run
            index.delete_ids("acme", [acme[5].id, acme[6].id])
            index.delete(
                VectorFilter("acme", equals={"doc_id": "doc3"}, ranges={"n": Range(gt=40)})
            )
        for flt in filters:
            assert edge.count(flt) == server.count(flt)
            assert {h.id for h in edge.iter_points(flt, batch=7)} == {
                h.id for h in server.iter_points(flt, batch=7)
            }
            for query in queries:
                left = edge.search(query, flt, limit=8)
                right = server.search(query, flt, limit=8)
                assert ids_of(left) == ids_of(right)
                assert [h.score for h in left] == pytest.approx([h.score for h in right], abs=1e-5)
                assert [h.payload for h in left] == [h.payload for h in right]
        ids = [acme[1].id, acme[5].id, globex[0].id, acme[2].id]
        assert ids_of(edge.retrieve("acme", ids)) == ids_of(server.retrieve("acme", ids))
