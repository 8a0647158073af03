"""Demo departments, users of every role and (through the "core.demo" hook) module data."""
import secrets

from flask import current_app
from sqlalchemy import select

from core import hooks, services
from core.db import db
from core.models import Department

DEPARTMENTS = (("SALES1", "销售一部"), ("SALES2", "销售二部"), ("SERVICE", "客户服务部"))
USERS = (
    ("head1", "head", "SALES1", "王经理"), ("sales1", "sales", "SALES1", "李娜"),
    ("sales1b", "sales", "SALES1", "张伟"), ("head2", "head", "SALES2", "赵经理"),
    ("sales2", "sales", "SALES2", "刘洋"), ("head3", "head", "SERVICE", "陈经理"),
    ("service1", "service", "SERVICE", "周敏"), ("security1", "security", None, "孙安全"),
)


def create(echo):
    actor = "cli:demo"
    if db.session.execute(select(Department).where(Department.code == DEPARTMENTS[0][0])).first():
        echo("demo data exists already")
        return
    depts = {code: services.create_department(actor, code, name) for code, name in DEPARTMENTS}
    users = {}
    echo("demo users (shown once):")
    for username, role, code, name in USERS:
        password = secrets.token_urlsafe(9)
        users[username] = services.create_user(actor, username, password, role, depts.get(code), name,
                                               must_change=True)  # printed once: one-time, as the README says
        echo(f"  {username:10} {role:9} {code or '-':8} {password}")
    shipped = _shipped_modules()
    for name in shipped:
        if services.installed_state(name) is None:
            services.install_module(actor, name)
    for name in shipped:
        for dept in depts.values():
            services.enable_module(actor, name, dept)
    db.session.commit()
    for module, result in hooks.call("core.demo", list(depts.values()), list(users.values()),
                                     all_departments=True):
        db.session.commit()
        if result:
            echo(f"  {module}: {result}")


def _shipped_modules():
    """The optional business modules of kehu's own modules/ folder. A module from another
    distribution (a company's own, or the test suite's `notices`) is never installed by the
    demo: the administrator installs it on the modules page when it is wanted."""
    return [name for name, info in current_app.extensions["kehu.modules"].items()
            if not info.manifest.required and not info.source.startswith("entry point")]
