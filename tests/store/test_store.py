"""The schema Alembic builds is exactly the schema the models describe (no drift)."""

from __future__ import annotations

from pathlib import Path

import pgkit
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import eseal.store.models_enterprise
import eseal.store.models_filings
import eseal.store.models_login  # noqa: F401 - register their tables on Base.metadata
from eseal.store.db import Database, upgrade
from eseal.store.models import Base


def test_migrations_build_exactly_the_models_schema(tmp_path: Path) -> None:
    url = (pgkit.server().create_empty("schema_drift") if pgkit.wanted()
           else f"sqlite:///{tmp_path / 'schema.db'}")
    db = Database(url)
    upgrade(db)
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    upgrade(db)  # at head already: a no-op
    db.dispose()
