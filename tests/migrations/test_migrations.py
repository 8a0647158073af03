"""The migrations build exactly the schema the models describe, on SQLite and on PostgreSQL, and
installing a module runs its own branch."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, inspect, select, text

from core import services
from core.app import create_app
from core.db import NAMING_CONVENTION, db
from core.models import ModuleState
from tests.conftest import PG_URL, _reset_postgres, make_config

DATABASES = ["sqlite"] + (["postgresql"] if PG_URL else [])


@pytest.fixture(params=DATABASES)
def migrating_app(request, tmp_path):
    """An app on an empty database whose schema only migrations may create."""
    if request.param == "postgresql":
        _reset_postgres(PG_URL)
        url = PG_URL
    else:
        url = f"sqlite:///{tmp_path / 'migrated.db'}"
    app = create_app(make_config(tmp_path, SQLALCHEMY_DATABASE_URI=url, RUN_MIGRATIONS=True))
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def loaded_metadata(app):
    """The tables of the core and of the modules this app loaded, and nothing else that tests may
    have put on the shared MetaData."""
    prefixes = ("core", *app.extensions["kehu.modules"])
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    for name, table in db.metadata.tables.items():
        if any(name.startswith(prefix + "_") for prefix in prefixes):
            table.to_metadata(metadata)
    return metadata


def outside_fts(name, type_, parent_names):
    """SQLite's FTS5 index on company names (customers_0004) is not a model: its virtual table
    and shadow tables are left out of the comparison."""
    return not (type_ == "table" and name.startswith("customers_customer_fts"))


def tables(app):
    with app.app_context():
        return set(inspect(db.engine).get_table_names())


def test_migrations_match_the_models(migrating_app):
    app = migrating_app
    assert tables(app) == set()
    with app.app_context():
        services.run_migrations("heads")
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False,
                                                             "include_name": outside_fts})
            differences = compare_metadata(context, loaded_metadata(app))
    assert differences == []
    expected = {t for t in loaded_metadata(app).tables}
    assert expected <= tables(app)
    assert "notices_notice" in expected


def test_migrations_install_the_append_only_trigger(migrating_app):
    app = migrating_app
    with app.app_context():
        services.run_migrations("core@head")
        from core import audit
        audit.record("test.migrated")
        db.session.commit()
        with pytest.raises(Exception, match="append-only"):
            db.session.execute(text("DELETE FROM core_audit_entry"))
        db.session.rollback()


def test_installing_a_module_runs_its_migration(migrating_app):
    app = migrating_app
    with app.app_context():
        services.run_migrations("core@head")
    assert "core_user" in tables(app)
    assert "notices_notice" not in tables(app)

    with app.app_context():
        assert services.install_module("test", "notices") == ["notices"]
        db.session.commit()
    assert "notices_notice" in tables(app)
    with app.app_context():
        assert db.session.get(ModuleState, "notices").version == "1.0.0"
        versions = set(db.session.execute(text("SELECT version_num FROM alembic_version")).scalars())
        assert "notices_0001" in versions
        # installing again is a no-op, not a second migration
        assert services.install_module("test", "notices") == []
        from core.audit import AuditEntry
        installs = db.session.execute(select(AuditEntry).where(AuditEntry.action == "core.module.installed")
                                      .where(AuditEntry.target_id == "notices")).scalars().all()
        assert len(installs) == 1


def test_every_branch_has_one_head(migrating_app):
    from alembic.script import ScriptDirectory
    app = migrating_app
    with app.app_context():
        script = ScriptDirectory.from_config(app.extensions["migrate"].migrate.get_config())
        heads = script.get_heads()
        labels = {label for rev in script.walk_revisions() for label in rev.branch_labels}
    assert {"core", "notices"} <= labels
    for label in labels:
        assert len(script.get_revisions(f"{label}@head")) == 1
    assert len(heads) == len(labels)


def test_customers_0004_indexes_company_names_on_sqlite(migrating_app):
    """The FTS5 trigram index is created with the existing company names, then kept in sync."""
    app = migrating_app
    with app.app_context():
        services.run_migrations("customers_0003")
        dept = services.create_department("test", "D1", "部门D1")
        user = services.create_user("test", "owner", "pw-Long-enough-1", "sales", dept)
        db.session.flush()
        db.session.execute(text(
            "INSERT INTO customers_customer (uid, number, number_rev, kind, status, status_changed_at, owner_id, "
            "department_id, tags, completeness, created_at, updated_at, version, company_name) VALUES "
            "('u1', 'KH-1', '1-HK', 'org', 'prospect', :now, :owner, :dept, '', 0, :now, :now, 1, '上海远东贸易有限公司')"),
            {"now": "2026-12-01 00:00:00", "owner": user.id, "dept": dept.id})
        db.session.commit()
        services.run_migrations("heads")
        names = set(inspect(db.engine).get_table_names())
        if db.engine.dialect.name != "sqlite":
            assert "customers_customer_fts" not in names
            return
        assert "customers_customer_fts" in names
        find = "SELECT rowid FROM customers_customer_fts WHERE customers_customer_fts MATCH :q"
        row_id = db.session.execute(text("SELECT id FROM customers_customer WHERE uid = 'u1'")).scalar_one()
        assert db.session.execute(text(find), {"q": '"远东贸易"'}).scalars().all() == [row_id]
        db.session.execute(text("UPDATE customers_customer SET company_name = '北京新华书店' WHERE id = :id"),
                           {"id": row_id})
        assert db.session.execute(text(find), {"q": '"远东贸易"'}).scalars().all() == []
        assert db.session.execute(text(find), {"q": '"新华书"'}).scalars().all() == [row_id]
