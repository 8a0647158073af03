"""visits: customer visits and calls (one table, notes encrypted under the customer's data key)

Revision ID: visits_0001
Revises: 
Create Date: 2026-12-01 01:01:15.790441

"""
from alembic import op
import sqlalchemy as sa

import core.api


# revision identifiers, used by Alembic.
revision = 'visits_0001'
down_revision = None
branch_labels = ('visits',)
depends_on = 'customers_0001'


def upgrade():
    op.create_table('visits_visit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uid', sa.String(length=32), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('visited_on', sa.Date(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('purpose', sa.String(length=100), nullable=False),
    sa.Column('notes_ct', sa.Text(), nullable=True),
    sa.Column('next_step', sa.String(length=200), nullable=True),
    sa.Column('next_contact_on', sa.Date(), nullable=True),
    sa.Column('author_id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('created_at', core.api.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', core.api.UTCDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['core_user.id'], name=op.f('fk_visits_visit_author_id_core_user')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers_customer.id'], name=op.f('fk_visits_visit_customer_id_customers_customer'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['owner_id'], ['core_user.id'], name=op.f('fk_visits_visit_owner_id_core_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visits_visit')),
    sa.UniqueConstraint('uid', name=op.f('uq_visits_visit_uid')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('visits_visit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_visits_visit_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_visits_visit_next_contact_on'), ['next_contact_on'], unique=False)
        batch_op.create_index(batch_op.f('ix_visits_visit_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_visits_visit_visited_on'), ['visited_on'], unique=False)



def downgrade():
    with op.batch_alter_table('visits_visit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_visits_visit_visited_on'))
        batch_op.drop_index(batch_op.f('ix_visits_visit_owner_id'))
        batch_op.drop_index(batch_op.f('ix_visits_visit_next_contact_on'))
        batch_op.drop_index(batch_op.f('ix_visits_visit_customer_id'))

    op.drop_table('visits_visit')
