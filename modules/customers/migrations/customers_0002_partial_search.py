"""partial search: truncated blind indexes, reversed number, trigram index on company names

Revision ID: customers_0002
Revises: customers_0001
Create Date: 2026-12-01 03:45:00

The new truncated indexes of existing customers are computed here from their encrypted fields
(decrypted one customer at a time in memory, never stored in clear), so partial search finds
the customers registered before the upgrade too.
"""
from alembic import op
import sqlalchemy as sa
import sqlalchemy.orm


# revision identifiers, used by Alembic.
revision = 'customers_0002'
down_revision = 'customers_0001'
branch_labels = None
depends_on = None

PARTIAL_COLUMNS = ('name_head_bidx', 'name_head2_bidx', 'name_tail2_bidx', 'phone_tail_bidx',
                   'phone2_tail_bidx', 'id_number_tail_bidx')
TRGM_INDEX = 'ix_customers_customer_company_name_trgm'


def upgrade():
    with op.batch_alter_table('customers_customer', schema=None) as batch_op:
        batch_op.add_column(sa.Column('number_rev', sa.String(length=20), nullable=True))
        for name in PARTIAL_COLUMNS:
            batch_op.add_column(sa.Column(name, sa.String(length=24), nullable=True))
        batch_op.create_index(batch_op.f('ix_customers_customer_number_rev'), ['number_rev'], unique=False)
        batch_op.create_index(batch_op.f('ix_customers_customer_updated_at'), ['updated_at'], unique=False)
        for name in PARTIAL_COLUMNS:
            batch_op.create_index(batch_op.f(f'ix_customers_customer_{name}'), [name], unique=False)
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
        op.create_index(TRGM_INDEX, 'customers_customer', ['company_name'], unique=False,
                        postgresql_using='gin', postgresql_ops={'company_name': 'gin_trgm_ops'})
    else:
        op.create_index(TRGM_INDEX, 'customers_customer', ['company_name'], unique=False)
    _backfill(bind)


def _backfill(bind, batch=500):
    from core.api import crypto
    from modules.customers import search

    table = sa.table('customers_customer', sa.column('id'), sa.column('uid'), sa.column('number'),
                     sa.column('subject_key_id'), sa.column('number_rev'),
                     *(sa.column(f'{f}_ct') for f in search.PARTIAL),
                     *(sa.column(c) for c in PARTIAL_COLUMNS))
    session = sa.orm.Session(bind=bind)
    last = 0
    while True:
        rows = bind.execute(sa.select(table).where(table.c.id > last).order_by(table.c.id).limit(batch)).all()
        if not rows:
            break
        key_ids = {r.subject_key_id for r in rows if r.subject_key_id is not None}
        keys = {k.id: k for k in session.scalars(sa.select(crypto.SubjectKey).where(
            crypto.SubjectKey.id.in_(key_ids)))} if key_ids else {}
        for row in rows:
            values = {'number_rev': (row.number or '')[::-1]}
            key = keys.get(row.subject_key_id)
            for field, index_keys in search.PARTIAL.items():
                token = getattr(row, f'{field}_ct')
                plain = None
                if token and key is not None:
                    try:
                        plain = crypto.decrypt(key, token, f'customers_customer|{field}|{row.uid}')
                    except crypto.DecryptionError:
                        plain = None
                for index_key in index_keys:
                    values[f'{index_key}_bidx'] = search.partial_index(index_key, plain) if plain else None
            bind.execute(table.update().where(table.c.id == row.id).values(**values))
        last = rows[-1].id


def downgrade():
    bind = op.get_bind()
    op.drop_index(TRGM_INDEX, table_name='customers_customer')
    with op.batch_alter_table('customers_customer', schema=None) as batch_op:
        for name in PARTIAL_COLUMNS:
            batch_op.drop_index(batch_op.f(f'ix_customers_customer_{name}'))
        batch_op.drop_index(batch_op.f('ix_customers_customer_updated_at'))
        batch_op.drop_index(batch_op.f('ix_customers_customer_number_rev'))
        for name in reversed(PARTIAL_COLUMNS):
            batch_op.drop_column(name)
        batch_op.drop_column('number_rev')
    del bind
