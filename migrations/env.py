"""Alembic environment shared by the core and every module (one lineage per module)."""
from alembic import context
from flask import current_app

config = context.config
target_db = current_app.extensions["migrate"].db


def run_migrations(connection):
    args = dict(current_app.extensions["migrate"].configure_args)
    sqlite = connection.dialect.name == "sqlite"
    args["render_as_batch"] = sqlite  # SQLite cannot ALTER most things
    # SQLite's DDL is transactional, and core.db opens every transaction itself (BEGIN IMMEDIATE,
    # pysqlite in autocommit mode, so no implicit COMMIT): a run is one transaction there too and
    # a failing migration leaves nothing half-done. Alembic's default for SQLite commits after
    # each migration.
    args["transactional_ddl"] = True
    context.configure(connection=connection, target_metadata=target_db.metadata, **args)
    with context.begin_transaction():  # inside a caller's transaction this opens none of its own
        context.run_migrations()


def run_migrations_online():
    # core.lifecycle passes the session's connection: the schema change then commits or rolls
    # back together with the module's state, grants and audit entries.
    connection = config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    with target_db.engine.connect() as connection:
        run_migrations(connection)


if context.is_offline_mode():
    raise SystemExit("kehu migrations run online only")
run_migrations_online()
