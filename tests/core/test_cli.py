"""The `kehu` command: `init` on an empty instance folder (the real console script, in a
subprocess), user and department commands, and the refusal to start without a master key."""
from __future__ import annotations

import os
import re
import secrets
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import inspect, select

import core.modules
from core.app import create_app
from core.crypto import KeyringError
from core.db import db
from core.models import ModuleState, User
from tests.conftest import FAST_ARGON2, PASSWORD, PG_URL, _reset_postgres, make_config

KEHU = Path(sys.executable).with_name("kehu")
ADMIN_LINE = re.compile(r"^administrator: admin / (\S+)  \(shown once", re.M)


def kehu(instance, *args, timeout=120):
    """Run the installed console script on an instance folder, always with SQLite there (even when
    the suite runs against PostgreSQL), in English."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEHU_")}
    env.update(KEHU_INSTANCE=str(instance), KEHU_DATABASE_URL=f"sqlite:///{instance}/kehu.db", KEHU_LOCALE="en")
    return subprocess.run([str(KEHU), *args], env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, cwd=instance.parent)


def instance_app(instance):
    return create_app({"TESTING": True, "WTF_CSRF_ENABLED": False, "INSTANCE_PATH": str(instance),
                       "SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance}/kehu.db",
                       "MASTER_KEY_FILE": str(instance / "master.key"),
                       "SECRET_KEY_FILE": str(instance / "secret.key")})


def one_line_error(output, *words):
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: "), lines
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def initialised(tmp_path_factory):
    """`kehu init` once on an empty instance folder; tests that change it work on a copy."""
    instance = tmp_path_factory.mktemp("cli") / "instance"
    instance.mkdir()
    result = kehu(instance, "init")
    return instance, result


def copy_of(instance, tmp_path):
    target = tmp_path / "instance"
    shutil.copytree(instance, target)
    return target


def test_init_creates_private_key_files_and_prints_the_admin_password_once(initialised):
    instance, result = initialised
    assert result.returncode == 0, result.stderr
    for name in ("master.key", "secret.key"):
        assert stat.S_IMODE((instance / name).stat().st_mode) == 0o600, name
    output = result.stdout + result.stderr
    password = ADMIN_LINE.search(output).group(1)
    assert output.count(password) == 1
    assert len(password) >= 12

    app = instance_app(instance)
    with app.app_context():
        admins = db.session.execute(select(User)).scalars().all()
        assert [(u.username, u.role, u.must_change_password) for u in admins] == [("admin", "admin", True)]
        from core import audit
        assert audit.verify()[1] is None
        created = db.session.execute(select(audit.AuditEntry).where(
            audit.AuditEntry.action == "core.user.created")).scalar_one()
        assert created.actor.startswith("cli:") and created.address == "cli"
    client = app.test_client()
    response = client.post("/login", data={"username": "admin", "password": password})
    assert response.status_code == 302
    assert response.headers["Location"] == "/account/password"  # the one-time password must go


def test_init_runs_the_core_migration(initialised):
    instance, _ = initialised
    conn = sqlite3.connect(instance / "kehu.db")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    versions = {r[0] for r in conn.execute("SELECT version_num FROM alembic_version")}
    triggers = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    conn.close()
    assert {"core_user", "core_department", "core_audit_entry", "core_role_grant"} <= tables
    app = instance_app(instance)
    with app.app_context():  # alembic_version holds heads: core_0001 is one of them or beneath one
        script = ScriptDirectory.from_config(app.extensions["migrate"].migrate.get_config())
        applied = {rev.revision for rev in script.iterate_revisions(sorted(versions), "base")}
    assert "core_0001" in applied
    assert {"core_audit_entry_no_update", "core_audit_entry_no_delete"} <= triggers


def test_init_is_idempotent(initialised, tmp_path):
    instance = copy_of(initialised[0], tmp_path)
    keys = {name: (instance / name).read_bytes() for name in ("master.key", "secret.key")}
    result = kehu(instance, "init")
    assert result.returncode == 0, result.stderr
    assert "already initialised" in result.stdout
    assert not ADMIN_LINE.search(result.stdout + result.stderr)
    assert "created master key" not in result.stdout
    assert {name: (instance / name).read_bytes() for name in keys} == keys
    conn = sqlite3.connect(instance / "kehu.db")
    assert conn.execute("SELECT count(*) FROM core_user").fetchone() == (1,)
    conn.close()


def test_a_command_that_writes_leaves_no_write_ahead_log_behind(initialised, tmp_path):
    """The command closes its connections as it exits, so SQLite checkpoints the WAL into the
    database and removes it: the next command does not start by reading it all again."""
    instance = copy_of(initialised[0], tmp_path)
    result = kehu(instance, "departments", "create", "W1", "写入一部")
    assert result.returncode == 0, result.stderr
    assert not (instance / "kehu.db-wal").exists()
    assert not (instance / "kehu.db-shm").exists()
    conn = sqlite3.connect(instance / "kehu.db")
    assert conn.execute("SELECT name FROM core_department WHERE code = 'W1'").fetchone() == ("写入一部",)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)  # WAL stays the database's mode
    conn.close()


def test_init_demo_prints_the_demo_users(tmp_path, monkeypatch):
    """In process (cheap password hashing) on an empty database: the same command code as above.
    Only `notices` (entry point) is loaded beside the core: the business modules' demo data is
    theirs to test, and slow to make. `notices` is the test suite's fixture module, from another
    distribution: the demo (and so `make run`) never installs it."""
    if PG_URL:
        _reset_postgres(PG_URL)
    monkeypatch.setattr(core.modules, "MODULES_DIR", tmp_path / "no-modules")
    app = create_app(make_config(tmp_path, RUN_MIGRATIONS=True))
    assert list(app.extensions["kehu.modules"]) == ["notices"]
    from core.cli import main
    result = CliRunner().invoke(main, ["init", "--demo"], obj=ScriptInfo(create_app=lambda: app))
    assert result.exit_code == 0, result.output
    assert ADMIN_LINE.search(result.output)
    assert "demo users (shown once):" in result.output
    users = dict(re.findall(r"^  (\w+)\s+\w+\s+\S+\s+(\S+)$", result.output, re.M))
    assert {"head1", "sales1", "sales2", "service1", "security1"} <= set(users)
    with app.app_context():
        # (the inspector's connection first: a session transaction holds SQLite's write lock)
        assert "notices_notice" not in inspect(db.engine).get_table_names()
        assert db.session.get(ModuleState, "notices") is None

    client = app.test_client()
    signed_in = client.post("/login", data={"username": "sales1", "password": users["sales1"]})
    assert signed_in.headers["Location"].endswith("/account/password")  # the printed password is one-time
    client.post("/account/password", data={"current": users["sales1"], "new": "Own-choice-2026",
                                           "confirm": "Own-choice-2026"})
    assert client.get("/notices/").status_code == 404
    assert "menu-notices" not in client.get("/").get_data(as_text=True)
    again = CliRunner().invoke(main, ["init", "--demo"], obj=ScriptInfo(create_app=lambda: app))
    assert again.exit_code == 0 and "demo data exists already" in again.output
    assert not ADMIN_LINE.search(again.output)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="needs KEHU_TEST_DATABASE_URL")
def test_init_creates_a_postgresql_database_that_does_not_exist(tmp_path, monkeypatch):
    """On the suite's server, under a fresh name derived from its database, dropped afterwards."""
    from sqlalchemy.engine import make_url
    from sqlalchemy_utils import database_exists, drop_database

    from core.cli import main
    base = make_url(PG_URL)
    url = base.set(database=f"{base.database}_init_{secrets.token_hex(4)}")
    assert not database_exists(url)
    monkeypatch.setattr(core.modules, "MODULES_DIR", tmp_path / "no-modules")  # core and notices only
    monkeypatch.setenv("KEHU_LOCALE", "en")
    app = create_app(make_config(tmp_path, SQLALCHEMY_DATABASE_URI=url.render_as_string(hide_password=False),
                                 RUN_MIGRATIONS=True))
    try:
        result = CliRunner().invoke(main, ["init"], obj=ScriptInfo(create_app=lambda: app))
        assert result.exit_code == 0, result.output
        assert result.output.splitlines()[0] == f"created database {url.database}"
        assert ADMIN_LINE.search(result.output)
        assert database_exists(url)
        with app.app_context():
            assert "core_user" in inspect(db.engine).get_table_names()
        again = CliRunner().invoke(main, ["init"], obj=ScriptInfo(create_app=lambda: app))
        assert again.exit_code == 0 and "created database" not in again.output
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        if database_exists(url):
            drop_database(url)
    assert not database_exists(url)


def cli_on(instance, *args):
    """The `kehu` command in process on an instance folder, as the console script builds its app."""
    from core.cli import main
    config = {"INSTANCE_PATH": str(instance), "SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance}/kehu.db",
              "MASTER_KEY_FILE": str(instance / "master.key"), "SECRET_KEY_FILE": str(instance / "secret.key"),
              "PASSWORD_HASH_PARAMS": FAST_ARGON2}
    info = ScriptInfo(create_app=lambda: create_app(config, uninitialised_ok=True))
    return CliRunner().invoke(main, list(args), obj=info)


def test_init_refuses_a_new_master_key_for_a_database_with_data(initialised, tmp_path):
    instance = copy_of(initialised[0], tmp_path)
    (instance / "master.key").unlink()
    result = cli_on(instance, "init")
    assert result.exit_code == 1
    one_line_error(result.output, "master key", "restore")
    assert not (instance / "master.key").exists()


def test_commands_refuse_to_run_without_the_master_key(initialised, tmp_path):
    instance = copy_of(initialised[0], tmp_path)
    (instance / "master.key").unlink()
    for args in (["run", "--host", "127.0.0.1", "--port", "0"], ["modules", "list"], ["audit", "verify"]):
        result = cli_on(instance, *args)
        assert result.exit_code == 1, args
        one_line_error(result.output, "kehu init")


def test_the_app_refuses_to_start_without_a_master_key(tmp_path):
    config = make_config(tmp_path)
    Path(config["MASTER_KEY_FILE"]).unlink()
    with pytest.raises(KeyringError) as caught:
        create_app(config)
    message = str(caught.value)
    assert "\n" not in message
    assert config["MASTER_KEY_FILE"] in message and "kehu init" in message


def test_the_app_refuses_a_master_key_others_can_read(tmp_path):
    config = make_config(tmp_path)
    os.chmod(config["MASTER_KEY_FILE"], 0o644)
    with pytest.raises(KeyringError, match="readable by group or others") as caught:
        create_app(config)
    assert "\n" not in str(caught.value)


def test_the_app_refuses_to_start_without_a_secret_key(tmp_path):
    config = make_config(tmp_path)
    Path(config["SECRET_KEY_FILE"]).unlink()
    with pytest.raises(KeyringError, match="secret key file"):
        create_app(config)


def test_commands_on_an_uninitialised_instance_say_so(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    info = ScriptInfo(create_app=lambda: create_app(
        {"INSTANCE_PATH": str(empty), "SQLALCHEMY_DATABASE_URI": f"sqlite:///{empty}/kehu.db",
         "MASTER_KEY_FILE": str(empty / "master.key"), "SECRET_KEY_FILE": str(empty / "secret.key")},
        uninitialised_ok=True))
    from core.cli import main
    result = CliRunner().invoke(main, ["departments", "create", "D1", "一部"], obj=info)
    assert result.exit_code == 1
    one_line_error(result.output, "kehu init")
    assert not (empty / "master.key").exists()


# --- users and departments, in process --------------------------------------------------------------

@pytest.fixture
def english(monkeypatch):
    monkeypatch.setenv("KEHU_LOCALE", "en")


def test_users_create_reads_the_password_from_stdin(app, runner, department, english):
    department("D1")
    secret = "Strong-pass-word-1"
    result = runner("users", "create", "bob", "--role", "sales", "--department", "D1", "--name", "鲍勃",
                    input=secret + "\n")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "user bob created"
    assert secret not in result.output
    with app.app_context():
        bob = db.session.execute(select(User).where(User.username == "bob")).scalar_one()
        assert (bob.role, bob.department.code, bob.display_name) == ("sales", "D1", "鲍勃")
        assert secret not in bob.password_hash
    client = app.test_client()
    assert client.post("/login", data={"username": "bob", "password": secret}).status_code == 302


@pytest.mark.parametrize("args,stdin,words", [
    (["weak", "--role", "sales", "--department", "D1"], "short\n", ["10"]),
    (["weak", "--role", "sales", "--department", "D1"], "aaaaaaaaaaaaaa\n", ["simple"]),
    (["weak", "--role", "sales", "--department", "D1"], "weak-weak-weak-1\n", ["user name"]),
    (["nodept", "--role", "sales", "--department", "NOPE"], PASSWORD + "\n", ["NOPE"]),
    (["nodept", "--role", "head"], PASSWORD + "\n", ["department"]),
    (["bad name!", "--role", "sales", "--department", "D1"], PASSWORD + "\n", ["User name"]),
    (["nopass", "--role", "sales", "--department", "D1"], "", ["standard input"]),
])
def test_users_create_refuses_bad_input_with_one_line(app, runner, department, english, args, stdin, words):
    department("D1")
    result = runner("users", "create", *args, input=stdin)
    assert result.exit_code != 0
    one_line_error(result.output, *words)
    with app.app_context():
        assert db.session.execute(select(User).where(User.username == args[0])).first() is None


def test_users_create_refuses_an_unknown_role(app, runner, department):
    department("D1")
    result = runner("users", "create", "boss", "--role", "overlord", "--department", "D1", input=PASSWORD + "\n")
    assert result.exit_code != 0
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "overlord" in errors[0]
    with app.app_context():
        assert db.session.execute(select(User).where(User.username == "boss")).first() is None


def test_users_create_refuses_a_duplicate(app, runner, make_user, english):
    make_user("taken")
    result = runner("users", "create", "taken", "--role", "sales", "--department", "D1", input=PASSWORD + "\n")
    assert result.exit_code != 0
    one_line_error(result.output, "taken", "exists")


def test_departments_create_and_refuse_a_duplicate(app, runner, english):
    result = runner("departments", "create", "D7", "销售七部")
    assert (result.exit_code, result.output.strip()) == (0, "department D7 created")
    result = runner("departments", "create", "D7", "另一个七部")
    assert result.exit_code != 0
    one_line_error(result.output, "D7", "exists")
    result = runner("departments", "create", "bad code", "坏")
    assert result.exit_code != 0
    one_line_error(result.output, "code")
    listing = runner("departments", "list")
    assert listing.output.strip().splitlines() == ["D7\t销售七部"]


def test_the_console_command_runs_main_then_freezes_the_heap_for_a_quick_exit(monkeypatch, capsys):
    import gc

    from core import cli
    monkeypatch.setattr(sys, "argv", ["kehu", "--help"])
    gc.unfreeze()
    try:
        with pytest.raises(SystemExit) as exit_:
            cli.console()
        assert exit_.value.code == 0
        assert "departments" in capsys.readouterr().out  # main's commands, not another one's
        assert gc.get_freeze_count() > 0  # the interpreter's last collection has nothing to rescan
    finally:
        gc.unfreeze()


def test_the_kehu_script_is_the_console_command():
    from importlib.metadata import entry_points
    assert [e.value for e in entry_points(group="console_scripts") if e.name == "kehu"] == ["core.cli:console"]
