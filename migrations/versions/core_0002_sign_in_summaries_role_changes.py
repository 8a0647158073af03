"""sign-in failure summaries, role changes confirmed by a second person

Revision ID: core_0002
Revises: core_0001
Create Date: 2026-12-01 01:10:00

"""
from alembic import op
import sqlalchemy as sa

import core.models


revision = 'core_0002'
down_revision = 'core_0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('core_login_throttle') as batch:
        batch.add_column(sa.Column('unaudited', sa.Integer(), nullable=False, server_default='0'))
    op.create_table('core_role_change',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('from_role', sa.String(length=16), nullable=False),
    sa.Column('to_role', sa.String(length=16), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=True),
    sa.Column('requested_by', sa.Integer(), nullable=False),
    sa.Column('requested_at', core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('decided_by', sa.Integer(), nullable=True),
    sa.Column('decided_at', core.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['department_id'], ['core_department.id'], name=op.f('fk_core_role_change_department_id_core_department')),
    sa.ForeignKeyConstraint(['decided_by'], ['core_user.id'], name=op.f('fk_core_role_change_decided_by_core_user')),
    sa.ForeignKeyConstraint(['requested_by'], ['core_user.id'], name=op.f('fk_core_role_change_requested_by_core_user')),
    sa.ForeignKeyConstraint(['user_id'], ['core_user.id'], name=op.f('fk_core_role_change_user_id_core_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_role_change'))
    )
    with op.batch_alter_table('core_role_change') as batch:
        batch.create_index(batch.f('ix_core_role_change_user_id'), ['user_id'], unique=False)


def downgrade():
    with op.batch_alter_table('core_role_change') as batch:
        batch.drop_index(batch.f('ix_core_role_change_user_id'))
    op.drop_table('core_role_change')
    with op.batch_alter_table('core_login_throttle') as batch:
        batch.drop_column('unaudited')
