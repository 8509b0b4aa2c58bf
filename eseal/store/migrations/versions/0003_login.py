"""login: accounts, challenges, sessions, login history, rate limits, known networks;
staff enrollment codes name no enterprise

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 10:00:00

The tables are described in eseal.auth.accounts (until they move to eseal.store.models).
"""


import sqlalchemy as sa
from alembic import op

revision = '0003'
# Follows 0002 (lifecycle) once it is in the tree; until then, 0001.
down_revision = '0001'  # 0002 was never needed: lifecycle fits the first schema
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('accounts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('identity', sa.String(length=300), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('enterprise_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('locked_until', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_login_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('identity')
    )
    op.create_index('ix_accounts_enterprise_id', 'accounts', ['enterprise_id'])
    # The login path writes these on every login: only the indexes its queries need.
    op.create_table('login_challenges',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('nonce_hash', sa.String(length=64), nullable=False),
    sa.Column('origin', sa.Text(), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('issued_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('used_at', sa.DateTime(), nullable=True),
    sa.Column('address', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('nonce_hash')
    )
    op.create_table('login_sessions',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('certificate_serial', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(), nullable=False),
    sa.Column('absolute_expires_at', sa.DateTime(), nullable=False),
    sa.Column('ended_at', sa.DateTime(), nullable=True),
    sa.Column('end_reason', sa.String(length=32), nullable=True),
    sa.Column('address', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('token_hash'),
    sqlite_with_rowid=False
    )
    op.create_index('ix_login_sessions_certificate_serial', 'login_sessions',
                    ['certificate_serial'])
    op.create_table('login_attempts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('enterprise_id', sa.Integer(), nullable=True),
    sa.Column('certificate_serial', sa.String(length=40), nullable=True),
    sa.Column('address', sa.Text(), nullable=True),
    sa.Column('network', sa.Text(), nullable=True),
    sa.Column('user_agent', sa.Text(), nullable=True),
    sa.Column('result', sa.String(length=16), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('possession', sa.Boolean(), nullable=False),
    sa.Column('new_network', sa.Boolean(), nullable=False),
    sa.Column('session_id', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_login_attempts_enterprise_id', 'login_attempts', ['enterprise_id'])
    op.create_table('login_throttles',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('window_start', sa.DateTime(), nullable=False),
    sa.Column('blocked_until', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('account_networks',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('network', sa.String(length=64), nullable=False),
    sa.Column('first_seen', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('account_id', 'network')
    )
    # Codes for CA staff (officers, auditors) name no enterprise.
    with op.batch_alter_table('enrollment_codes', schema=None) as batch_op:
        batch_op.alter_column('enterprise_id', existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table('enrollment_codes', schema=None) as batch_op:
        batch_op.alter_column('enterprise_id', existing_type=sa.Integer(), nullable=False)
    op.drop_table('account_networks')
    op.drop_table('login_throttles')
    op.drop_index('ix_login_attempts_enterprise_id', table_name='login_attempts')
    op.drop_table('login_attempts')
    op.drop_index('ix_login_sessions_certificate_serial', table_name='login_sessions')
    op.drop_table('login_sessions')
    op.drop_table('login_challenges')
    op.drop_index('ix_accounts_enterprise_id', table_name='accounts')
    op.drop_table('accounts')
