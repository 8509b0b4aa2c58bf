"""Persistence: SQLAlchemy models, the database handle and Alembic migrations.

No cryptography and no HTTP here; other rooms pass in bytes and strings.
"""

from eseal.store.db import Database, close_all, open_database

__all__ = ["Database", "close_all", "open_database"]
