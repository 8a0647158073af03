"""lifecycle: retention policies, legal holds, destruction runs and tombstones

Revision ID: lifecycle_0001
Revises: 
Create Date: 2026-12-01 01:46:00.000000

"""
from alembic import op
import sqlalchemy as sa

import core.api


# revision identifiers, used by Alembic.
revision = 'lifecycle_0001'
down_revision = None
branch_labels = ('lifecycle',)
depends_on = 'customers_0001'


def upgrade():
    op.create_table('lifecycle_policy',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('years', sa.Integer(), nullable=True),
    sa.Column('changed_by', sa.String(length=64), nullable=False),
    sa.Column('changed_at', core.api.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lifecycle_policy')),
    sa.UniqueConstraint('status', name=op.f('uq_lifecycle_policy_status')),
    sqlite_autoincrement=True
    )
    op.create_table('lifecycle_hold',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('set_by', sa.String(length=64), nullable=False),
    sa.Column('set_at', core.api.UTCDateTime(timezone=True), nullable=False),
    sa.Column('released_by', sa.String(length=64), nullable=True),
    sa.Column('released_at', core.api.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers_customer.id'], name=op.f('fk_lifecycle_hold_customer_id_customers_customer'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lifecycle_hold')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('lifecycle_hold', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lifecycle_hold_customer_id'), ['customer_id'], unique=False)
    op.create_table('lifecycle_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=20), nullable=False),
    sa.Column('at', core.api.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('destroyed', sa.Integer(), nullable=False),
    sa.Column('held', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lifecycle_run')),
    sa.UniqueConstraint('number', name=op.f('uq_lifecycle_run_number')),
    sqlite_autoincrement=True
    )
    op.create_table('lifecycle_tombstone',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('customer_number', sa.String(length=20), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=True),
    sa.Column('policy', sa.String(length=64), nullable=False),
    sa.Column('destroyed_at', core.api.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['lifecycle_run.id'], name=op.f('fk_lifecycle_tombstone_run_id_lifecycle_run')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lifecycle_tombstone')),
    sa.UniqueConstraint('customer_id', name=op.f('uq_lifecycle_tombstone_customer_id')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('lifecycle_tombstone', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lifecycle_tombstone_run_id'), ['run_id'], unique=False)


def downgrade():
    with op.batch_alter_table('lifecycle_tombstone', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lifecycle_tombstone_run_id'))
    op.drop_table('lifecycle_tombstone')
    op.drop_table('lifecycle_run')
    with op.batch_alter_table('lifecycle_hold', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lifecycle_hold_customer_id'))
    op.drop_table('lifecycle_hold')
    op.drop_table('lifecycle_policy')
