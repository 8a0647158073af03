"""SQLite: an FTS5 trigram index on company names, so substring search stays fast

Revision ID: customers_0004
Revises: customers_0003
Create Date: 2026-12-01 05:30:00

On SQLite only (PostgreSQL has had its pg_trgm index since customers_0002): an external-content
FTS5 table with the trigram tokenizer over customers_customer(company_name), triggers that keep
it in sync, and the names of the existing customers indexed ('rebuild'). Company names are public
data; the index holds nothing else.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'customers_0004'
down_revision = 'customers_0003'
branch_labels = None
depends_on = None

FTS = 'customers_customer_fts'
DDL = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS} USING fts5(company_name, "
    "content='customers_customer', content_rowid='id', tokenize='trigram')",
    f"CREATE TRIGGER IF NOT EXISTS {FTS}_ai AFTER INSERT ON customers_customer BEGIN "
    f"INSERT INTO {FTS}(rowid, company_name) VALUES (new.id, new.company_name); END",
    f"CREATE TRIGGER IF NOT EXISTS {FTS}_ad AFTER DELETE ON customers_customer BEGIN "
    f"INSERT INTO {FTS}({FTS}, rowid, company_name) VALUES ('delete', old.id, old.company_name); END",
    f"CREATE TRIGGER IF NOT EXISTS {FTS}_au AFTER UPDATE OF company_name ON customers_customer BEGIN "
    f"INSERT INTO {FTS}({FTS}, rowid, company_name) VALUES ('delete', old.id, old.company_name); "
    f"INSERT INTO {FTS}(rowid, company_name) VALUES (new.id, new.company_name); END",
)


def upgrade():
    if op.get_bind().dialect.name != 'sqlite':
        return
    for statement in DDL:
        op.execute(statement)
    op.execute(f"INSERT INTO {FTS}({FTS}) VALUES ('rebuild')")  # the customers already registered


def downgrade():
    if op.get_bind().dialect.name != 'sqlite':
        return
    for suffix in ('ai', 'ad', 'au'):
        op.execute(f"DROP TRIGGER IF EXISTS {FTS}_{suffix}")
    op.execute(f"DROP TABLE IF EXISTS {FTS}")
