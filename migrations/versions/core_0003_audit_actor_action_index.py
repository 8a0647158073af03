"""the audit trail: an index on (actor_id, action, at)

Revision ID: core_0003
Revises: core_0002
Create Date: 2026-12-01 12:00:00

Rate limits (reveals an hour, duplicate probes) and the alert rules count or read one account's
entries of one action since a time. With the actor_id index alone each check read every entry of
the account: 45 ms at 144,000 entries, growing with the trail; an import adds two entries a
customer to the importing head's. An index only: no table copy, the append-only triggers stay.
"""
from alembic import op


revision = 'core_0003'
down_revision = 'core_0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_core_audit_entry_actor_id_action_at', 'core_audit_entry', ['actor_id', 'action', 'at'])


def downgrade():
    op.drop_index('ix_core_audit_entry_actor_id_action_at', table_name='core_audit_entry')
