"""customers: transaction records corrected or voided with a reason

Revision ID: customers_0003
Revises: customers_0002
Create Date: 2026-12-01 03:50:00.000000

"""
from alembic import op
import sqlalchemy as sa

import core.api


# revision identifiers, used by Alembic.
revision = 'customers_0003'
down_revision = 'customers_0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('customers_transaction', schema=None) as batch_op:
        batch_op.add_column(sa.Column('corrected_at', core.api.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('corrected_by', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('correction_reason', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('voided_at', core.api.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('voided_by', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('void_reason', sa.String(length=500), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_customers_transaction_corrected_by_core_user'), 'core_user',
                                    ['corrected_by'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_customers_transaction_voided_by_core_user'), 'core_user',
                                    ['voided_by'], ['id'])


def downgrade():
    with op.batch_alter_table('customers_transaction', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_customers_transaction_voided_by_core_user'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_customers_transaction_corrected_by_core_user'), type_='foreignkey')
        batch_op.drop_column('void_reason')
        batch_op.drop_column('voided_by')
        batch_op.drop_column('voided_at')
        batch_op.drop_column('correction_reason')
        batch_op.drop_column('corrected_by')
        batch_op.drop_column('corrected_at')
