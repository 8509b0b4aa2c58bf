"""audit checkpoints form a chain: each names its sequence number and its predecessor's hash

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 01:50:00

Rows written before this revision keep NULL in both (legacy checkpoints, see
eseal.ca.audit_head).
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audit_checkpoints') as batch:
        batch.add_column(sa.Column('seq', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('audit_checkpoints') as batch:
        batch.drop_column('prev_hash')
        batch.drop_column('seq')
