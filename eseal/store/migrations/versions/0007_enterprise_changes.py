"""the enterprise changes: names, legal reps, filing types, rights, contacts, remote unblock

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-04 10:16:18

Seeds the filing types (a table, so the authority adds kinds of business without a release)
and starts each registered enterprise's name and legal-representative history with what
the enterprise row holds now.
"""

import sqlalchemy as sa
from alembic import op

FILING_TYPES = [
    ("annual_report", "年度报告", "annual report"),
    ("change_registration", "变更登记", "change of registration"),
    ("record_filing", "备案", "record filing"),
    ("deregistration", "注销登记", "deregistration"),
    ("other", "其他", "other"),
]


revision = '0007'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('filing_types',
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name_zh', sa.Text(), nullable=False),
    sa.Column('name_en', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('code')
    )
    op.create_table('emergency_contacts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('enterprise_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('role', sa.Text(), nullable=False),
    sa.Column('phone', sa.String(length=16), nullable=False),
    sa.Column('email', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('emergency_contacts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_emergency_contacts_enterprise_id'), ['enterprise_id'], unique=False)

    op.create_table('enterprise_names',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('enterprise_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('valid_from', sa.DateTime(), nullable=False),
    sa.Column('valid_to', sa.DateTime(), nullable=True),
    sa.Column('changed_by', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('enterprise_names', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enterprise_names_enterprise_id'), ['enterprise_id'], unique=False)

    op.create_table('legal_rep_terms',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('enterprise_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('valid_from', sa.DateTime(), nullable=False),
    sa.Column('valid_to', sa.DateTime(), nullable=True),
    sa.Column('changed_by', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('legal_rep_terms', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_legal_rep_terms_enterprise_id'), ['enterprise_id'], unique=False)

    op.create_table('account_rights',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('filing_type', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['filing_type'], ['filing_types.code'], ),
    sa.PrimaryKeyConstraint('account_id', 'filing_type')
    )
    op.create_table('account_rights_set',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('set_by', sa.Text(), nullable=False),
    sa.Column('set_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('account_id')
    )
    op.create_table('unblock_requests',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('token_label', sa.String(length=64), nullable=False),
    sa.Column('enterprise_id', sa.Integer(), nullable=True),
    sa.Column('holder_role', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('requested_at', sa.DateTime(), nullable=False),
    sa.Column('approved_by', sa.Text(), nullable=True),
    sa.Column('approved_at', sa.DateTime(), nullable=True),
    sa.Column('authorisation_hash', sa.String(length=64), nullable=True),
    sa.Column('expires_at', sa.DateTime(), nullable=True),
    sa.Column('redeemed_at', sa.DateTime(), nullable=True),
    sa.Column('next_so_pin_encrypted', sa.LargeBinary(), nullable=True),
    sa.Column('done_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], ),
    sa.ForeignKeyConstraint(['token_label'], ['tokens.label'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('unblock_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_unblock_requests_token_label'), ['token_label'], unique=False)

    with op.batch_alter_table('filings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('filing_type', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('flag', sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f('ix_filings_filing_type'), ['filing_type'], unique=False)

    types = sa.table('filing_types', sa.column('code', sa.String), sa.column('name_zh', sa.Text),
                     sa.column('name_en', sa.Text))
    op.bulk_insert(types, [{"code": c, "name_zh": zh, "name_en": en}
                           for c, zh, en in FILING_TYPES])
    op.execute("INSERT INTO enterprise_names (enterprise_id, name, valid_from, valid_to, "
               "changed_by) SELECT id, name, created_at, NULL, 'migration:0007' "
               "FROM enterprises")
    op.execute("INSERT INTO legal_rep_terms (enterprise_id, name, valid_from, valid_to, "
               "changed_by) SELECT id, legal_rep, created_at, NULL, 'migration:0007' "
               "FROM enterprises")



def downgrade() -> None:
    with op.batch_alter_table('filings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_filings_filing_type'))
        batch_op.drop_column('flag')
        batch_op.drop_column('filing_type')

    with op.batch_alter_table('unblock_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_unblock_requests_token_label'))

    op.drop_table('unblock_requests')
    op.drop_table('account_rights_set')
    op.drop_table('account_rights')
    with op.batch_alter_table('legal_rep_terms', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_legal_rep_terms_enterprise_id'))

    op.drop_table('legal_rep_terms')
    with op.batch_alter_table('enterprise_names', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enterprise_names_enterprise_id'))

    op.drop_table('enterprise_names')
    with op.batch_alter_table('emergency_contacts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_emergency_contacts_enterprise_id'))

    op.drop_table('emergency_contacts')
    op.drop_table('filing_types')
