"""chunks full-text index

The keyword search index lives in the ledger itself, maintained by the
database on every insert, update and delete of ``chunks``, so it can never
disagree with the chunks that ingestion, updates and deletes leave behind.

PostgreSQL: a generated ``tsvector`` column (English configuration) with a
GIN index; ranked with ``ts_rank_cd``.

SQLite: an FTS5 table (porter stemmer over unicode61) with *external
content*. FTS5 addresses rows by an integer, but ``chunks`` has a text key
and its implicit rowid may change on ``VACUUM``; so ``chunks_fts_keys``
gives every chunk a stable integer key (an INTEGER PRIMARY KEY survives
VACUUM), the view ``chunks_fts_content`` is the content table FTS5 reads
back, and three triggers keep keys and index in step with ``chunks``.
Ranked with ``bm25()``.

Warning for later revisions: Alembic's SQLite batch mode rebuilds a table
it alters (copy, drop, rename), which drops that table's triggers. A
revision that batch-alters ``chunks`` must re-create the three triggers
below and run the FTS5 ``rebuild``; ``janus verify`` reports missing
triggers.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 10:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_SQLITE_UP = (
    """
    CREATE TABLE chunks_fts_keys (
        key INTEGER PRIMARY KEY,
        chunk_id VARCHAR(36) NOT NULL UNIQUE,
        tenant_id VARCHAR(64) NOT NULL
    )
    """,
    "CREATE INDEX ix_chunks_fts_keys_tenant_id ON chunks_fts_keys (tenant_id)",
    """
    CREATE VIEW chunks_fts_content AS
    SELECT k.key AS key, c.text AS text
    FROM chunks_fts_keys AS k JOIN chunks AS c ON c.id = k.chunk_id
    """,
    """
    CREATE VIRTUAL TABLE chunks_fts USING fts5(
        text,
        content='chunks_fts_content',
        content_rowid='key',
        tokenize='porter unicode61 remove_diacritics 2'
    )
    """,
    """
    CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
        INSERT INTO chunks_fts_keys (chunk_id, tenant_id) VALUES (new.id, new.tenant_id);
        INSERT INTO chunks_fts (rowid, text) VALUES (last_insert_rowid(), new.text);
    END
    """,
    """
    CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
        INSERT INTO chunks_fts (chunks_fts, rowid, text)
            SELECT 'delete', key, old.text FROM chunks_fts_keys WHERE chunk_id = old.id;
        DELETE FROM chunks_fts_keys WHERE chunk_id = old.id;
    END
    """,
    """
    CREATE TRIGGER chunks_fts_update AFTER UPDATE OF id, tenant_id, text ON chunks BEGIN
        INSERT INTO chunks_fts (chunks_fts, rowid, text)
            SELECT 'delete', key, old.text FROM chunks_fts_keys WHERE chunk_id = old.id;
        UPDATE chunks_fts_keys SET chunk_id = new.id, tenant_id = new.tenant_id
            WHERE chunk_id = old.id;
        INSERT INTO chunks_fts (rowid, text)
            SELECT key, new.text FROM chunks_fts_keys WHERE chunk_id = new.id;
    END
    """,
    # What was there before this revision: keys in a stable order, then one rebuild.
    "INSERT INTO chunks_fts_keys (chunk_id, tenant_id) "
    "SELECT id, tenant_id FROM chunks ORDER BY id",
    "INSERT INTO chunks_fts (chunks_fts) VALUES ('rebuild')",
)
_SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS chunks_fts_update",
    "DROP TRIGGER IF EXISTS chunks_fts_delete",
    "DROP TRIGGER IF EXISTS chunks_fts_insert",
    "DROP TABLE IF EXISTS chunks_fts",
    "DROP VIEW IF EXISTS chunks_fts_content",
    "DROP INDEX IF EXISTS ix_chunks_fts_keys_tenant_id",
    "DROP TABLE IF EXISTS chunks_fts_keys",
)
_PG_UP = (
    "ALTER TABLE chunks ADD COLUMN search_vector tsvector "
    "GENERATED ALWAYS AS (to_tsvector('english'::regconfig, text)) STORED",
    "CREATE INDEX ix_chunks_search_vector ON chunks USING gin (search_vector)",
)
_PG_DOWN = (
    "DROP INDEX IF EXISTS ix_chunks_search_vector",
    "ALTER TABLE chunks DROP COLUMN IF EXISTS search_vector",
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    statements = {"sqlite": _SQLITE_UP, "postgresql": _PG_UP}.get(dialect, ())
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    statements = {"sqlite": _SQLITE_DOWN, "postgresql": _PG_DOWN}.get(dialect, ())
    for statement in statements:
        op.execute(statement)
