"""The lifecycle of a module on the real migrations: states, upgrade, uninstall (with purge), a
module whose code is gone, a migration that fails half-way, and `kehu modules show`.

The `lifemod` and `lifedep` fixture modules are copied into tmp_path and changed there; the app
is built again after each change, as a restarted server would be."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import inspect, select, text

from core import lifecycle, services
from core.app import create_app
from core.audit import AuditEntry
from core.db import db
from core.models import Department, ModuleEnablement, ModuleState, RoleGrant
from tests.conftest import PASSWORD, PG_URL, _reset_postgres, make_config

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "modules_lifecycle"
NAMES = ("lifemod", "lifedep")

V2_MIGRATION = '''
import sqlalchemy as sa
from alembic import op

revision = "lifemod_0002"
down_revision = "lifemod_0001"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("lifemod_item", sa.Column("note", sa.String(length=200), nullable=True))
    op.create_table("lifemod_tag", sa.Column("id", sa.Integer(), primary_key=True))
    {fail}


def downgrade():
    op.drop_table("lifemod_tag")
    op.drop_column("lifemod_item", "note")
'''


def forget_imports():
    """The next app imports the copy under test afresh (Python would reuse the old one)."""
    for name in list(sys.modules):
        if name.split(".")[0] in NAMES:
            del sys.modules[name]


@pytest.fixture
def mods(tmp_path, monkeypatch):
    monkeypatch.setenv("KEHU_LOCALE", "en")  # the CLI's language: its lines are compared as text
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # a rewritten file must not meet a stale .pyc
    folder = tmp_path / "mods"
    shutil.copytree(FIXTURE, folder)
    forget_imports()
    yield folder
    forget_imports()
    for name in ("lifemod_item", "lifemod_tag"):
        if name in db.metadata.tables:
            db.metadata.remove(db.metadata.tables[name])


def build(tmp_path, mods):
    return create_app(make_config(tmp_path, MODULE_PATHS=[str(mods)], RUN_MIGRATIONS=True))


@pytest.fixture
def fresh(tmp_path, mods):
    """An app on an empty database brought up as `kehu init` does: core and customers migrated."""
    if PG_URL:
        _reset_postgres(PG_URL)
    app = build(tmp_path, mods)
    with app.app_context():
        services.run_migrations("core@head")
        services.grant_defaults("core")
        services.install_module("test", "customers")
        services.create_department("test", "D1", "一部")
        services.create_user("test", "root", PASSWORD, "admin")
        db.session.commit()
    yield app
    dispose(app)


def dispose(app):
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def rebuild(tmp_path, mods, old):
    """The server restarted on changed code."""
    dispose(old)
    forget_imports()
    return build(tmp_path, mods)


def bump(mods, fail=False):
    """lifemod 1.1.0: a second migration (adds a column and a table, or fails half-way) and a new
    permission."""
    init = mods / "lifemod" / "__init__.py"
    code = init.read_text().replace('version="1.0.0"', 'version="1.1.0"')
    code = code.replace('roles=("head",)),\n)', 'roles=("head",)),\n    Permission("lifemod.export", '
                        '{"zh_CN": "导出测试条目", "en": "Export test items"}, roles=("head", "sales")),\n)')
    assert "lifemod.export" in code
    init.write_text(code)
    fail_line = 'raise RuntimeError("half-way through lifemod_0002")' if fail else "pass"
    (mods / "lifemod" / "migrations" / "lifemod_0002_note.py").write_text(V2_MIGRATION.format(fail=fail_line))


def run(app, *args, input=None):
    from core.cli import main
    return CliRunner().invoke(main, list(args), input=input, obj=ScriptInfo(create_app=lambda: app))


def one_line_error(result, *words):
    assert result.exit_code != 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: "), lines
    for word in words:
        assert word in lines[0], lines[0]


def admin(app):
    client = app.test_client()
    assert client.post("/login", data={"username": "root", "password": PASSWORD}).status_code == 302
    return client


def query(app, sql):
    with app.app_context():
        return db.session.execute(text(sql)).all()


def tables(app):
    with app.app_context():
        return set(inspect(db.engine).get_table_names())


def columns(app, table):
    with app.app_context():
        return {c["name"] for c in inspect(db.engine).get_columns(table)}


def versions(app):
    return {row[0] for row in query(app, "SELECT version_num FROM alembic_version")}


def stored(app, name):
    with app.app_context():
        row = db.session.get(ModuleState, name)
        return row.version if row else None


def state(app, name):
    with app.app_context():
        return lifecycle.statuses()[name].state


def entries(app, action):
    with app.app_context():
        return db.session.execute(select(AuditEntry).where(AuditEntry.action == action)
                                  .order_by(AuditEntry.id)).scalars().all()


def listed(app, name):
    result = run(app, "modules", "list")
    assert result.exit_code == 0, result.output
    return next(line.split("\t") for line in result.output.splitlines() if line.startswith(name + "\t"))


def add_items(app, *titles):
    with app.app_context():
        for title in titles:
            db.session.execute(text("INSERT INTO lifemod_item (title) VALUES (:t)"), {"t": title})
        db.session.commit()


def chain_intact(app):
    result = run(app, "audit", "verify")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("audit chain intact")


# --- states -----------------------------------------------------------------------------------------

def test_versions_compare_as_numbers():
    assert lifecycle.version_key("1.10.0") > lifecycle.version_key("1.9.0")
    assert lifecycle.version_key("1.0") == lifecycle.version_key("1.0.0")


def test_a_removed_module_is_missing_and_the_others_still_install(fresh, tmp_path, mods):
    app = fresh
    assert run(app, "modules", "install", "lifemod").output.strip() == "installed: lifemod"
    add_items(app, "甲")
    assert state(app, "lifemod") == lifecycle.INSTALLED
    assert admin(app).get("/lifemod/").status_code == 404  # installed, not enabled for the admin

    shutil.rmtree(mods / "lifemod")
    shutil.rmtree(mods / "lifedep")
    app = rebuild(tmp_path, mods, app)
    assert state(app, "lifemod") == lifecycle.MISSING
    assert listed(app, "lifemod") == ["lifemod", "1.0.0", "-", "depends=-", "-", "missing"]
    client = admin(app)
    page = client.get("/admin/modules").get_data(as_text=True)
    row = page[page.index('id="module-lifemod"'):]
    row = row[:row.index("</tr>")]
    assert "缺失" in row and "1.0.0" in row and 'id="uninstall-lifemod"' in row
    assert client.get("/lifemod/").status_code == 404
    assert client.get("/").status_code == 200

    # Alembic cannot locate lifemod_0001 any more, yet other modules install and upgrade around it
    assert run(app, "modules", "install", "grading").output.strip() == "installed: grading"
    assert run(app, "modules", "install", "notices").output.strip() == "installed: notices"
    assert {"grading_rule", "notices_notice", "lifemod_item"} <= tables(app)
    assert {"lifemod_0001", "grading_0001", "notices_0001"} <= versions(app)  # lifemod's row is kept
    assert query(app, "SELECT title FROM lifemod_item") == [("甲",)]
    show = run(app, "modules", "show", "lifemod")
    assert show.exit_code == 0, show.output
    assert show.output.splitlines() == ["lifemod", "Version: 1.0.0 installed; its code is gone",
                                        "State: Code missing", "Tables: lifemod_item"]


def test_a_missing_module_is_forgotten_with_purge_and_its_tables_are_named(fresh, tmp_path, mods):
    app = fresh
    run(app, "modules", "install", "lifemod")
    run(app, "modules", "enable", "lifemod", "--department", "D1")
    add_items(app, "甲")
    shutil.rmtree(mods / "lifemod")
    shutil.rmtree(mods / "lifedep")
    app = rebuild(tmp_path, mods, app)

    one_line_error(run(app, "modules", "uninstall", "lifemod", "--yes"), "lifemod", "missing", "purge")
    result = run(app, "modules", "uninstall", "lifemod", "--purge", "--yes")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "forgot missing module lifemod; its tables remain in the database: lifemod_item"
    assert stored(app, "lifemod") is None
    assert query(app, "SELECT module FROM core_module_enablement WHERE module = 'lifemod'") == []
    assert query(app, "SELECT permission FROM core_role_grant WHERE permission LIKE 'lifemod.%'") == []
    assert "lifemod" not in run(app, "modules", "list").output
    assert "lifemod_item" in tables(app)
    done = entries(app, "core.module.uninstalled")[-1]
    assert done.details_dict["tables_kept"] == ["lifemod_item"] and done.details_dict["missing"] is True
    chain_intact(app)
    assert run(app, "modules", "install", "notices").exit_code == 0  # still fine afterwards


def test_the_admin_page_forgets_a_missing_module(fresh, tmp_path, mods):
    app = fresh
    run(app, "modules", "install", "lifemod")
    shutil.rmtree(mods / "lifemod")
    shutil.rmtree(mods / "lifedep")
    app = rebuild(tmp_path, mods, app)
    client = admin(app)
    page = client.get("/admin/modules/lifemod/uninstall").get_data(as_text=True)
    assert 'name="purge"' in page and "lifemod_item" in page
    response = client.post("/admin/modules/lifemod/uninstall", follow_redirects=True)
    assert response.status_code == 200 and stored(app, "lifemod") == "1.0.0"  # purge not ticked
    response = client.post("/admin/modules/lifemod/uninstall", data={"purge": "1"}, follow_redirects=True)
    assert response.status_code == 200
    assert stored(app, "lifemod") is None
    assert "lifemod_item" in response.get_data(as_text=True)  # the flash names the tables left


# --- upgrade ----------------------------------------------------------------------------------------

def test_a_newer_version_is_to_upgrade_and_upgrade_runs_its_migration(fresh, tmp_path, mods):
    app = fresh
    run(app, "modules", "install", "lifemod")
    add_items(app, "甲", "乙")
    with app.app_context():  # the administrator took lifemod.view away from sales: it stays away
        db.session.execute(RoleGrant.__table__.delete().where(RoleGrant.role == "sales",
                                                              RoleGrant.permission == "lifemod.view"))
        db.session.commit()
    bump(mods)
    app = rebuild(tmp_path, mods, app)
    assert state(app, "lifemod") == lifecycle.TO_UPGRADE
    assert listed(app, "lifemod")[1] == "1.1.0"
    assert listed(app, "lifemod")[-1] == "to upgrade from 1.0.0, enabled in: -"

    result = run(app, "modules", "upgrade", "lifemod")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "upgraded lifemod from 1.0.0 to 1.1.0"
    assert "note" in columns(app, "lifemod_item") and "lifemod_tag" in tables(app)
    assert sorted(query(app, "SELECT title FROM lifemod_item")) == [("乙",), ("甲",)]
    assert stored(app, "lifemod") == "1.1.0"
    assert state(app, "lifemod") == lifecycle.INSTALLED
    assert "lifemod_0002" in versions(app)
    grants = {tuple(r) for r in query(app, "SELECT role, permission FROM core_role_grant "
                                           "WHERE permission LIKE 'lifemod.%'")}
    assert grants == {("head", "lifemod.view"), ("head", "lifemod.close"),
                      ("head", "lifemod.export"), ("sales", "lifemod.export")}
    upgraded = entries(app, "core.module.upgraded")[-1]
    assert (upgraded.target_id, upgraded.details_dict["from_version"], upgraded.details_dict["to_version"]) == (
        "lifemod", "1.0.0", "1.1.0")

    one_line_error(run(app, "modules", "upgrade", "lifemod"), "lifemod", "nothing to upgrade")
    one_line_error(run(app, "modules", "upgrade", "notices"), "notices", "nothing to upgrade")
    one_line_error(run(app, "modules", "upgrade", "nosuch"), "nosuch")
    assert len(entries(app, "core.module.upgraded")) == 1


def test_the_upgrade_button(fresh, tmp_path, mods):
    app = fresh
    run(app, "modules", "install", "lifemod")
    bump(mods)
    app = rebuild(tmp_path, mods, app)
    client = admin(app)
    page = client.get("/admin/modules").get_data(as_text=True)
    assert 'action="/admin/modules/lifemod/upgrade"' in page and "待升级" in page
    assert client.get("/admin/modules/lifemod/upgrade").status_code == 405
    response = client.post("/admin/modules/lifemod/upgrade", follow_redirects=True)
    assert response.status_code == 200
    assert stored(app, "lifemod") == "1.1.0" and "note" in columns(app, "lifemod_item")
    page = response.get_data(as_text=True)
    assert 'action="/admin/modules/lifemod/upgrade"' not in page
    assert 'id="module-lifemod" data-state="installed"' in page


def test_only_administrators_upgrade(fresh, tmp_path, mods):
    app = fresh
    run(app, "modules", "install", "lifemod")
    bump(mods)
    app = rebuild(tmp_path, mods, app)
    with app.app_context():
        dept = db.session.execute(select(Department).where(Department.code == "D1")).scalar_one()
        services.create_user("test", "head1", PASSWORD, "head", dept)
        db.session.commit()
    head = app.test_client()
    head.post("/login", data={"username": "head1", "password": PASSWORD})
    assert 'action="/admin/modules/lifemod/upgrade"' not in head.get("/admin/modules").get_data(as_text=True)
    assert head.post("/admin/modules/lifemod/upgrade").status_code == 403
    assert head.get("/admin/modules/lifemod/uninstall").status_code == 403
    assert stored(app, "lifemod") == "1.0.0"


# --- a migration that fails -------------------------------------------------------------------------

def test_a_failing_upgrade_is_one_audited_line_and_changes_nothing(fresh, tmp_path, mods):
    app = fresh
    run(app, "modules", "install", "lifemod")
    add_items(app, "甲")
    before = (versions(app), tables(app), columns(app, "lifemod_item"))
    bump(mods, fail=True)
    app = rebuild(tmp_path, mods, app)

    one_line_error(run(app, "modules", "upgrade", "lifemod"), "Upgrading lifemod failed", "changed nothing",
                   "RuntimeError: half-way through lifemod_0002")
    assert (versions(app), tables(app), columns(app, "lifemod_item")) == before  # no half-added column
    assert stored(app, "lifemod") == "1.0.0" and state(app, "lifemod") == lifecycle.TO_UPGRADE
    assert query(app, "SELECT title FROM lifemod_item") == [("甲",)]
    assert query(app, "SELECT permission FROM core_role_grant WHERE permission = 'lifemod.export'") == []
    failed = entries(app, "core.module.failed")
    assert len(failed) == 1 and failed[0].result == "failed"
    assert {k: failed[0].details_dict[k] for k in ("module", "operation", "error")} == {
        "module": "lifemod", "operation": "upgrade", "error": "RuntimeError: half-way through lifemod_0002"}
    assert entries(app, "core.module.upgraded") == []
    chain_intact(app)

    response = admin(app).post("/admin/modules/lifemod/upgrade", follow_redirects=True)
    assert response.status_code == 200
    assert "half-way through lifemod_0002" in response.get_data(as_text=True)
    assert (versions(app), tables(app), stored(app, "lifemod")) == (before[0], before[1], "1.0.0")
    assert len(entries(app, "core.module.failed")) == 2


# --- uninstall --------------------------------------------------------------------------------------

def test_uninstall_is_refused_while_a_dependant_is_installed(fresh):
    app = fresh
    assert run(app, "modules", "install", "lifedep").output.strip() == "installed: lifemod, lifedep"
    one_line_error(run(app, "modules", "uninstall", "lifemod", "--yes"), "lifemod", "lifedep")
    assert stored(app, "lifemod") == "1.0.0" and {"lifemod_item", "lifedep_note"} <= tables(app)
    page = admin(app).get("/admin/modules/lifemod/uninstall").get_data(as_text=True)
    assert 'id="uninstall-refusal"' in page and "lifedep" in page

    assert run(app, "modules", "uninstall", "lifedep", "--yes").output.strip() == "uninstalled lifedep"
    assert run(app, "modules", "uninstall", "lifemod", "--yes").output.strip() == "uninstalled lifemod"
    assert not {"lifemod_item", "lifedep_note"} & tables(app)
    assert not {"lifemod_0001", "lifedep_0001"} & versions(app)
    assert [e.details_dict["purged"] for e in entries(app, "core.module.uninstalled")] == [False, False]


def test_uninstall_is_refused_while_a_missing_module_refers_to_its_tables(fresh, tmp_path, mods):
    app = fresh
    run(app, "modules", "install", "lifedep")
    shutil.rmtree(mods / "lifedep")
    app = rebuild(tmp_path, mods, app)
    assert state(app, "lifedep") == lifecycle.MISSING
    # lifedep_0001 was the only row recording lifemod_0001 and customers_0001: both are vouched for
    assert run(app, "modules", "install", "notices").output.strip() == "installed: notices"
    one_line_error(run(app, "modules", "uninstall", "lifemod", "--yes"), "lifemod", "lifedep_note")
    assert stored(app, "lifemod") == "1.0.0" and "lifemod_item" in tables(app)
    assert run(app, "modules", "uninstall", "lifedep", "--purge", "--yes").exit_code == 0  # forgotten,
    one_line_error(run(app, "modules", "uninstall", "lifemod", "--yes"), "lifedep_note")  # its table stays


def test_uninstall_with_data_needs_purge_then_reinstall_works(fresh):
    app = fresh
    run(app, "modules", "install", "lifemod")
    run(app, "modules", "enable", "lifemod", "--department", "D1")
    add_items(app, "甲", "乙")

    one_line_error(run(app, "modules", "uninstall", "lifemod", "--yes"), "lifemod", "lifemod_item: 2", "purge")
    declined = run(app, "modules", "uninstall", "lifemod", "--purge", input="n\n")
    assert declined.exit_code != 0 and "delete its data (lifemod_item: 2)" in declined.output
    assert stored(app, "lifemod") == "1.0.0" and len(query(app, "SELECT id FROM lifemod_item")) == 2

    result = run(app, "modules", "uninstall", "lifemod", "--purge", input="y\n")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "uninstalled lifemod and deleted lifemod_item: 2"
    assert "lifemod_item" not in tables(app) and "lifemod_0001" not in versions(app)
    assert stored(app, "lifemod") is None
    with app.app_context():
        assert db.session.execute(select(ModuleEnablement).where(ModuleEnablement.module == "lifemod")).first() is None
        assert db.session.execute(select(RoleGrant).where(RoleGrant.permission.like("lifemod.%"))).first() is None
    purged = entries(app, "core.module.purged")
    assert [e.details_dict["rows"] for e in purged] == [["lifemod_item=2"]]
    assert "甲" not in purged[0].details and "乙" not in purged[0].details
    assert entries(app, "core.module.uninstalled")[-1].details_dict["purged"] is True
    assert purged[0].id < entries(app, "core.module.uninstalled")[-1].id
    chain_intact(app)

    assert run(app, "modules", "install", "lifemod").output.strip() == "installed: lifemod"
    assert query(app, "SELECT id FROM lifemod_item") == []
    assert ("sales", "lifemod.view") in {tuple(r) for r in query(app, "SELECT role, permission FROM core_role_grant")}


def test_the_uninstall_button_asks_first_and_purges_when_ticked(fresh):
    app = fresh
    run(app, "modules", "install", "lifemod")
    add_items(app, "甲")
    client = admin(app)
    assert 'id="uninstall-lifemod"' in client.get("/admin/modules").get_data(as_text=True)
    page = client.get("/admin/modules/lifemod/uninstall").get_data(as_text=True)
    assert 'name="purge"' in page and "lifemod_item" in page and 'id="confirm-uninstall"' in page
    assert stored(app, "lifemod") == "1.0.0"  # showing the question changes nothing

    response = client.post("/admin/modules/lifemod/uninstall", follow_redirects=True)
    assert response.status_code == 200 and "lifemod_item: 1" in response.get_data(as_text=True)
    assert stored(app, "lifemod") == "1.0.0" and "lifemod_item" in tables(app)
    response = client.post("/admin/modules/lifemod/uninstall", data={"purge": "1"}, follow_redirects=True)
    assert response.status_code == 200
    assert stored(app, "lifemod") is None and "lifemod_item" not in tables(app)
    assert 'action="/admin/modules/lifemod/install"' in response.get_data(as_text=True)
    assert client.get("/admin/modules/nosuch/uninstall").status_code == 404


def test_customers_cannot_be_uninstalled(fresh):
    app = fresh
    one_line_error(run(app, "modules", "uninstall", "customers", "--purge", "--yes"), "customers", "required")
    one_line_error(run(app, "modules", "uninstall", "notices", "--yes"), "notices", "not installed")
    one_line_error(run(app, "modules", "uninstall", "nosuch", "--yes"), "nosuch")
    client = admin(app)
    assert 'id="uninstall-customers"' not in client.get("/admin/modules").get_data(as_text=True)
    response = client.post("/admin/modules/customers/uninstall", data={"purge": "1"}, follow_redirects=True)
    assert response.status_code == 200
    version = app.extensions["kehu.modules"]["customers"].manifest.version
    assert stored(app, "customers") == version and "customers_customer" in tables(app)
    assert entries(app, "core.module.uninstalled") == []


# --- show -------------------------------------------------------------------------------------------

def test_modules_show_prints_what_a_module_contributes(fresh, mods):
    app = fresh
    run(app, "modules", "install", "lifemod")
    result = run(app, "modules", "show", "lifemod")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    migrations = mods / "lifemod" / "migrations"
    for expected in [
        "lifemod — Lifecycle test",
        "Version: 1.0.0 in the code, 1.0.0 installed",
        "State: Installed",
        f"Source: mods/ {mods / 'lifemod'}",
        "Depends on: customers",
        "Uses: -",
        "Routes:",
        "  /lifemod/  lifemod.index  GET  lifemod.view  read",
        "  /lifemod/<int:item_id>/close  lifemod.close  POST  lifemod.close  action",
        "Permissions:",
        "  lifemod.view  View test items  (Default roles: sales, head)",
        "  lifemod.close  Close test items  (Default roles: head)",
        "Menus:",
        "  lifemod.items  Test items  → lifemod.index  (lifemod.view, 100)",
        "Hooks offered:",
        "  lifemod.summary  summary(item) -> str  One line about an item.",
        "Hooks used:",
        "  customers.timeline",
        "Audit actions:",
        "  lifemod.item.created  Test item created",
        "CLI commands:",
        "  kehu lifemod",
        "Tables:",
        "  lifemod_item",
        f"Migrations: {migrations}, head revision lifemod_0001",
    ]:
        assert expected in lines, (expected, lines)
    assert lines.index("Routes:") < lines.index("Permissions:") < lines.index("Migrations: " + f"{migrations}, "
                                                                               "head revision lifemod_0001")

    dep = run(app, "modules", "show", "lifedep").output.splitlines()
    assert "State: Not installed" in dep and "Routes: -" in dep and "Version: 1.0.0" in dep
    one_line_error(run(app, "modules", "show", "nosuch"), "nosuch")
