"""Developer tool: write a module's first Alembic revision from its models.

    .venv/bin/python tools/make_migration.py customers customers_0001 "customer register"

Builds an empty SQLite database at core's head (plus the module's dependencies), then
autogenerates the difference into modules/<name>/migrations/. Review the result."""
import sys
import tempfile
from pathlib import Path

from alembic import command

from core import crypto, services
from core.app import create_app


def main(module, rev_id, message):
    tmp = Path(tempfile.mkdtemp())
    crypto.Keyring.generate(tmp / "master.key")
    crypto.generate_secret_key_file(tmp / "secret.key")
    app = create_app({"INSTANCE_PATH": str(tmp)})
    with app.app_context():
        info = app.extensions["kehu.modules"][module]
        # every other branch at its head, so autogenerate sees only this module's difference
        services.run_migrations("heads")
        config = app.extensions["migrate"].migrate.get_config()
        # only this module's tables: hide every other table from autogenerate
        prefix = module + "_"
        app.extensions["migrate"].configure_args["include_object"] = (
            lambda obj, name, type_, reflected, compare_to:
            type_ != "table" or (name.startswith(prefix) or reflected)
            and not name.startswith("customers_customer_fts"))  # SQLite's FTS5 index, not a model
        script = command.revision(config, message=message, autogenerate=True, head="base", branch_label=module,
                         version_path=str(info.path / "migrations"), rev_id=rev_id,
                         depends_on=[f"{d}@head" for d in info.manifest.depends] or ["core_0001"])
        path = Path(script.path)
        text = path.read_text()
        if "core.models." in text:
            text = text.replace("core.models.", "core.api.")  # modules use core only through core.api
            path.write_text(text.replace("import sqlalchemy as sa\n", "import sqlalchemy as sa\n\nimport core.api\n", 1))


if __name__ == "__main__":
    main(*sys.argv[1:4])
