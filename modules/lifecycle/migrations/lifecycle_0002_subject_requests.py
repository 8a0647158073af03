"""lifecycle: data-subject requests

Revision ID: lifecycle_0002
Revises: lifecycle_0001
Create Date: 2026-12-01 01:51:00.000000

"""
from alembic import op
import sqlalchemy as sa

import core.api


# revision identifiers, used by Alembic.
revision = 'lifecycle_0002'
down_revision = 'lifecycle_0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('lifecycle_request',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=20), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('received_on', sa.Date(), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('outcome', sa.String(length=200), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', core.api.UTCDateTime(timezone=True), nullable=False),
    sa.Column('closed_by', sa.String(length=64), nullable=True),
    sa.Column('closed_at', core.api.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers_customer.id'], name=op.f('fk_lifecycle_request_customer_id_customers_customer'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lifecycle_request')),
    sa.UniqueConstraint('number', name=op.f('uq_lifecycle_request_number')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('lifecycle_request', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lifecycle_request_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_lifecycle_request_due_on'), ['due_on'], unique=False)
        batch_op.create_index(batch_op.f('ix_lifecycle_request_status'), ['status'], unique=False)


def downgrade():
    with op.batch_alter_table('lifecycle_request', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lifecycle_request_status'))
        batch_op.drop_index(batch_op.f('ix_lifecycle_request_due_on'))
        batch_op.drop_index(batch_op.f('ix_lifecycle_request_customer_id'))
    op.drop_table('lifecycle_request')
