"""browser_seals: seals prepared for a USB-Key in a browser (single-use, short-lived)

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-04 10:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('browser_seals',
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('filing_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('certificate_serial', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('used_at', sa.DateTime(), nullable=True),
    sa.Column('pdf', sa.LargeBinary(), nullable=False),
    sa.Column('region_start', sa.BigInteger(), nullable=False),
    sa.Column('region_end', sa.BigInteger(), nullable=False),
    sa.Column('document_digest', sa.LargeBinary(), nullable=False),
    sa.Column('signed_attrs', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['filing_id'], ['filings.id'], ),
    sa.PrimaryKeyConstraint('id_hash')
    )
    with op.batch_alter_table('browser_seals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_browser_seals_filing_id'), ['filing_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('browser_seals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_browser_seals_filing_id'))
    op.drop_table('browser_seals')
