"""filings: drafts, sealed versions and the service's receipts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 16:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('filings',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('enterprise_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.Text(), nullable=False),
    sa.Column('created_by_account', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('draft_sha256', sa.String(length=64), nullable=False),
    sa.Column('draft_size', sa.BigInteger(), nullable=False),
    sa.Column('draft_pages', sa.Integer(), nullable=False),
    sa.Column('sealed_sha256', sa.String(length=64), nullable=True),
    sa.Column('sealed_size', sa.BigInteger(), nullable=True),
    sa.Column('seal_serial', sa.String(length=40), nullable=True),
    sa.Column('seal_signing_time', sa.DateTime(), nullable=True),
    sa.Column('sealed_by', sa.Text(), nullable=True),
    sa.Column('accepted_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('filings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_filings_enterprise_id'), ['enterprise_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_filings_status'), ['status'], unique=False)

    op.create_table('filing_documents',
    sa.Column('filing_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['filing_id'], ['filings.id'], ),
    sa.PrimaryKeyConstraint('filing_id', 'kind')
    )
    op.create_table('filing_receipts',
    sa.Column('filing_id', sa.Integer(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('token', sa.LargeBinary(), nullable=False),
    sa.Column('tsa_serial', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['filing_id'], ['filings.id'], ),
    sa.PrimaryKeyConstraint('filing_id')
    )


def downgrade() -> None:
    op.drop_table('filing_receipts')
    op.drop_table('filing_documents')
    with op.batch_alter_table('filings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_filings_status'))
        batch_op.drop_index(batch_op.f('ix_filings_enterprise_id'))

    op.drop_table('filings')
