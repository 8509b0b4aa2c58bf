"""console search indices: certificates by creation and expiry order, audit events by target,
action and time

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 13:40:00

The officer console pages through 100,000 certificates by keyset: each order it offers has
an index ending in the serial, so a page is an index range, not a sort of the table
(``eseal.ra.certificate_search``). ``(not_after, serial)`` and
``(status, not_after, profile)`` replace the single-column ``not_after`` and ``status``
indices, which they cover; a state ("hold and not expired", of one profile) is then counted
from the index alone. A holder substring has no index to seek, but scanning
``(holder, serial)`` reads a few MB instead of every row's DER. The audit search finds an
enterprise's events by target, an action in id order and a time range without scanning
the log.
"""

from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.drop_index('ix_certificates_not_after')
        batch_op.create_index('ix_certificates_not_after_serial', ['not_after', 'serial'],
                              unique=False)
        batch_op.create_index('ix_certificates_created_at_serial', ['created_at', 'serial'],
                              unique=False)
        batch_op.drop_index('ix_certificates_status')
        batch_op.create_index('ix_certificates_status_not_after',
                              ['status', 'not_after', 'profile'], unique=False)
        batch_op.create_index('ix_certificates_holder_serial', ['holder', 'serial'],
                              unique=False)
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_target', ['target'], unique=False)
        batch_op.create_index('ix_audit_events_action_id', ['action', 'id'], unique=False)
        batch_op.create_index('ix_audit_events_at', ['at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_at')
        batch_op.drop_index('ix_audit_events_action_id')
        batch_op.drop_index('ix_audit_events_target')
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.drop_index('ix_certificates_holder_serial')
        batch_op.drop_index('ix_certificates_status_not_after')
        batch_op.create_index('ix_certificates_status', ['status'], unique=False)
        batch_op.drop_index('ix_certificates_created_at_serial')
        batch_op.drop_index('ix_certificates_not_after_serial')
        batch_op.create_index('ix_certificates_not_after', ['not_after'], unique=False)
