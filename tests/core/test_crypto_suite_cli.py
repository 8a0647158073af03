"""`kehu init --crypto sm` (or KEHU_CRYPTO=sm) makes an instance under the national suite; a key
of the other suite is never silently replaced."""
import json
from pathlib import Path

from click.testing import CliRunner
from flask.cli import ScriptInfo

import core.modules
from core import audit, crypto
from core.app import create_app
from core.db import db
from tests.conftest import FAST_ARGON2


def cli_on(instance, *args, env=None):
    """`kehu` in process on an instance folder, as the console script builds its app (SQLite)."""
    from core.cli import main
    config = {"INSTANCE_PATH": str(instance), "SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance}/kehu.db",
              "MASTER_KEY_FILE": str(instance / "master.key"), "SECRET_KEY_FILE": str(instance / "secret.key"),
              "PASSWORD_HASH_PARAMS": FAST_ARGON2}
    apps = []

    def make():
        apps.append(create_app(config, uninitialised_ok=True))
        return apps[-1]

    result = CliRunner().invoke(main, list(args), obj=ScriptInfo(create_app=make), env=env)
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    return result


def test_init_with_the_national_suite_from_the_setting_and_no_silent_switch(tmp_path, monkeypatch):
    monkeypatch.setattr(core.modules, "MODULES_DIR", tmp_path / "no-modules")  # core and notices only
    instance = tmp_path / "instance"
    instance.mkdir()

    result = cli_on(instance, "init", env={"KEHU_CRYPTO": "sm"})

    assert result.exit_code == 0, result.output
    assert "国密 SM4-GCM + HMAC-SM3" in result.output
    doc = json.loads((instance / "master.key").read_text())
    assert doc["suite"] == "sm" and doc["audit_mac"] == [{"since": 1, "suite": "sm"}]
    app = create_app({"INSTANCE_PATH": str(instance), "SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance}/kehu.db",
                      "MASTER_KEY_FILE": str(instance / "master.key"),
                      "SECRET_KEY_FILE": str(instance / "secret.key")})
    with app.app_context():
        assert crypto.suite().name == "sm"
        checked, broken = audit.verify()
        assert checked >= 1 and broken is None  # the administrator's creation, signed with HMAC-SM3
        db.session.remove()
        db.engine.dispose()

    before = (instance / "master.key").read_bytes()
    refused = cli_on(instance, "init", "--crypto", "aes")
    assert refused.exit_code == 1
    lines = refused.output.strip().splitlines()
    assert len(lines) == 1 and "keys rotate --crypto aes" in lines[0]
    assert (instance / "master.key").read_bytes() == before
    again = cli_on(instance, "init", "--crypto", "sm")
    assert again.exit_code == 0 and "already initialised" in again.output


def test_init_refuses_an_unknown_suite(tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir()
    result = cli_on(instance, "init", "--crypto", "des")
    assert result.exit_code == 2 and "'des' is not one of 'aes', 'sm'" in result.output
    assert not Path(instance / "master.key").exists()
