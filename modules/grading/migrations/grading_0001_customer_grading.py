"""grading: rule versions, current grades and grade history

Revision ID: grading_0001
Revises: 
Create Date: 2026-11-27 08:18:32.086243

"""
from alembic import op
import sqlalchemy as sa

import core.api


# revision identifiers, used by Alembic.
revision = 'grading_0001'
down_revision = None
branch_labels = ('grading',)
depends_on = 'customers_0001'


def upgrade():
    op.create_table('grading_rule',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('min_amount', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('min_count', sa.Integer(), nullable=True),
    sa.Column('min_tenure_months', sa.Integer(), nullable=False),
    sa.Column('escalate_open_complaints', sa.Integer(), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', core.api.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['core_user.id'], name=op.f('fk_grading_rule_created_by_core_user')),
    sa.ForeignKeyConstraint(['department_id'], ['core_department.id'], name=op.f('fk_grading_rule_department_id_core_department'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_grading_rule')),
    sa.UniqueConstraint('department_id', 'version', name=op.f('uq_grading_rule_department_id')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('grading_rule', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_grading_rule_department_id'), ['department_id'], unique=False)

    op.create_table('grading_grade',
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('grade', sa.String(length=16), nullable=False),
    sa.Column('computed', sa.String(length=16), nullable=False),
    sa.Column('rule_version', sa.Integer(), nullable=False),
    sa.Column('basis', sa.Text(), nullable=False),
    sa.Column('computed_at', core.api.UTCDateTime(timezone=True), nullable=False),
    sa.Column('override', sa.String(length=16), nullable=True),
    sa.Column('override_reason', sa.String(length=500), nullable=True),
    sa.Column('override_by', sa.Integer(), nullable=True),
    sa.Column('override_at', core.api.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("computed IN ('important', 'ordinary')", name=op.f('ck_grading_grade_computed')),
    sa.CheckConstraint("grade IN ('important', 'ordinary')", name=op.f('ck_grading_grade_grade')),
    sa.CheckConstraint("override IS NULL OR override IN ('important', 'ordinary')", name=op.f('ck_grading_grade_override')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers_customer.id'], name=op.f('fk_grading_grade_customer_id_customers_customer'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['override_by'], ['core_user.id'], name=op.f('fk_grading_grade_override_by_core_user')),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_grading_grade'))
    )
    with op.batch_alter_table('grading_grade', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_grading_grade_grade'), ['grade'], unique=False)

    op.create_table('grading_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('at', core.api.UTCDateTime(timezone=True), nullable=False),
    sa.Column('from_grade', sa.String(length=16), nullable=True),
    sa.Column('to_grade', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('rule_version', sa.Integer(), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.CheckConstraint("source IN ('rules', 'override', 'override_removed')", name=op.f('ck_grading_history_source')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers_customer.id'], name=op.f('fk_grading_history_customer_id_customers_customer'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['core_user.id'], name=op.f('fk_grading_history_user_id_core_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_grading_history')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('grading_history', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_grading_history_customer_id'), ['customer_id'], unique=False)



def downgrade():
    with op.batch_alter_table('grading_history', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_grading_history_customer_id'))

    op.drop_table('grading_history')
    with op.batch_alter_table('grading_grade', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_grading_grade_grade'))

    op.drop_table('grading_grade')
    with op.batch_alter_table('grading_rule', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_grading_rule_department_id'))

    op.drop_table('grading_rule')
