"""Database migrations: one Alembic history and one Postgres schema per owning service.

    python -m mesh.migrate graph_svc post_svc ...

creates the database if it does not exist, then upgrades each service's schema to head. A
service's `migrations/env.py` only calls `run_migrations(metadata)`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, create_engine, text
from sqlalchemy.engine import make_url

from mesh.config import MeshSettings
from mesh.ids import ID_SHARD_SEQUENCE

log = logging.getLogger("mesh.migrate")

# Any constant shared by every migrator of a database.
_MIGRATION_LOCK = 0x676C696D7073


def ensure_database(url: str) -> None:
    """Creates the database named in `url` if it is missing (connecting to `postgres` to do so), and
    the sequence id shards are leased from."""
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}).scalar()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    finally:
        admin.dispose()
    engine = create_engine(target)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SEQUENCE IF NOT EXISTS public.{ID_SHARD_SEQUENCE}"))
    finally:
        engine.dispose()


def drop_database(url: str) -> None:
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
    finally:
        admin.dispose()


def upgrade(url: str, service_package: str) -> None:
    """Upgrades `service_package`'s schema to the newest revision. Concurrent callers (two pods, a
    job and a developer) take turns on a PostgreSQL advisory lock instead of colliding."""
    package = importlib.import_module(service_package)
    script_location = Path(package.__file__ or "").parent / "migrations"
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    engine = create_engine(url)
    try:
        with engine.connect() as lock:
            lock.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
            try:
                command.upgrade(config, "head")
            finally:
                lock.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK})
    finally:
        engine.dispose()


def run_migrations(metadata: MetaData) -> None:
    """The body of every service's `migrations/env.py` (online mode only)."""
    schema = metadata.schema
    url = context.config.get_main_option("sqlalchemy.url") or MeshSettings().database_url
    engine = create_engine(url)
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        conn.commit()
        context.configure(
            connection=conn,
            target_metadata=metadata,
            version_table_schema=schema,
            include_schemas=True,
            include_name=lambda name, kind, _parent: kind != "schema" or name == schema,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description="Create the database if needed and migrate services' schemas to head.")
    parser.add_argument("services", nargs="+", help="service packages, e.g. graph_svc post_svc")
    parser.add_argument("--database-url", help="default: GLIMPSE_DATABASE_URL")
    args = parser.parse_args()
    url = args.database_url or MeshSettings().database_url
    ensure_database(url)
    for service in args.services:
        upgrade(url, service)
        print(f"migrated {service}")


if __name__ == "__main__":
    main()


def create_outbox_table(schema: str) -> None:
    """Migration step: the `outbox` table of `schema`, with its index, created from its one
    definition (mesh.outbox.outbox_table)."""
    from alembic import op

    from mesh.outbox import outbox_table

    outbox_table(MetaData(schema=schema)).create(op.get_bind())
