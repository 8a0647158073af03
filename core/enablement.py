"""Which modules are installed, and which departments use them. One guard for every route."""
from flask import abort, current_app, g, request
from flask_login import current_user
from sqlalchemy import select

from core.db import db
from core.models import ModuleEnablement


def loaded_modules():
    return current_app.extensions["kehu.modules"]


def changed():
    """Install, uninstall, enable or disable happened in this request or command: drop the
    per-request copies so the next check reads the tables again."""
    g.pop("kehu_installed", None)
    g.pop("kehu_enabled", None)


def _enabled_pairs():
    if "kehu_enabled" not in g:
        g.kehu_enabled = frozenset(tuple(row) for row in db.session.execute(
            select(ModuleEnablement.module, ModuleEnablement.department_id)))
    return g.kehu_enabled


def is_installed(module):
    from core.access import installed_modules
    return module in installed_modules()


def is_enabled(module, department_id, user=None):
    """A module is usable by a department when installed and enabled there; core always is, and
    a required module (customers) is enabled everywhere. For ``user`` holding one of the
    manifest's ``company_roles`` an installed module is usable whatever their department."""
    if module == "core":
        return True
    info = loaded_modules().get(module)
    if info is None or not is_installed(module):
        return False
    if info.manifest.required:
        return True
    if user is not None and getattr(user, "role", None) in info.manifest.company_roles:
        return True
    return department_id is not None and (module, department_id) in _enabled_pairs()


def guard():
    """before_request: a module's routes answer 404 to users whose department has not enabled it."""
    module = (request.blueprint or "").split(".")[0]
    if module not in loaded_modules() or not current_user.is_authenticated:
        return
    if not is_enabled(module, current_user.department_id, user=current_user):
        g.kehu_refused_module = module  # its context processors must not run for the 404 page
        abort(404)
    return


def skip_refused_context(app):
    """Wrap each module blueprint's context processors so that they add nothing to a page of a
    module the guard refused: the 404 page is rendered within the module's blueprint, and a module
    that is not installed has no tables for its processors (a navigation badge) to read."""
    for name, processors in app.template_context_processors.items():
        module = (name or "").split(".")[0]
        if module in app.extensions["kehu.modules"]:
            processors[:] = [_unless_refused(module, f) for f in processors]


def _unless_refused(module, processor):
    def wrapped():
        return {} if g.get("kehu_refused_module") == module else processor()
    return wrapped
