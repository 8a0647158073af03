"""Alembic environment shared by the core and every module (one lineage per module)."""
from alembic import context
from flask import current_app

config = context.config
target_db = current_app.extensions["migrate"].db


def run_migrations_online():
    engine = target_db.engine
    with engine.connect() as connection:
        args = dict(current_app.extensions["migrate"].configure_args)
        args["render_as_batch"] = engine.dialect.name == "sqlite"  # SQLite cannot ALTER most things
        context.configure(connection=connection, target_metadata=target_db.metadata, **args)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("kehu migrations run online only")
run_migrations_online()
