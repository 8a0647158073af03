"""Access control: declared permissions, the one `require` guard, and record rules.

Permissions are declared in code (core and modules) and granted to roles in the database.
Identity needs are loaded from the database on every request, so a changed grant or a demoted
user takes effect at once. Function-level refusals answer 403; rows outside a user's remit are
filtered out by `scoped` so that they answer 404 like rows that do not exist.
"""
from __future__ import annotations

import functools

from flask import abort, current_app, g, has_request_context, request
from flask_login import current_user
from flask_principal import Identity, Need, Principal, RoleNeed, UserNeed, identity_loaded
from flask_principal import Permission as PrincipalPermission
from sqlalchemy import and_, bindparam, false, func, or_, select

from core.db import db
from core.models import ROLES, RoleGrant

principal = Principal(use_sessions=False, skip_static=True)

# name -> Permission. Declared once at start-up; identical across app instances.
_DECLARED = {}


def PermissionNeed(name):
    return Need("permission", name)


def declare(perm):
    existing = _DECLARED.get(perm.name)
    if existing is not None and existing != perm:
        from core.modules import ModuleError
        raise ModuleError(f"module {perm.module}: permission {perm.name} declared twice differently")
    bad = [r for r in perm.roles if r not in ROLES]
    if bad:
        from core.modules import ModuleError
        raise ModuleError(f"module {perm.module}: permission {perm.name} names unknown roles {bad}")
    _DECLARED[perm.name] = perm


def declared():
    return dict(_DECLARED)


# What the administrator role may never hold: it manages accounts and modules, not customers,
# and it must not watch (or confirm changes to) itself.
ADMIN_NEVER = {"core.audit.view", "core.roles.confirm"}


def grantable(role, permission):
    """May ``role`` hold ``permission``? Everything but customer-data and audit rights for admin."""
    return role != "admin" or (permission.startswith("core.") and permission not in ADMIN_NEVER)


def granted_permissions(user):
    """The permissions of a user's role, from the database, for installed modules only."""
    user = _unproxied(user)
    if user is None or not user.is_authenticated:
        return frozenset()
    cache = g.setdefault("kehu_grants", {})
    if user.id not in cache:
        read_with_user = g.get("kehu_read_grants")
        if read_with_user is not None and read_with_user[0] == user.id:
            _id, modules, names = g.pop("kehu_read_grants")
        else:
            modules, names = _split(*db.session.execute(_grants_and_modules(), {"role": user.role}).one())
        if "kehu_installed" not in g:
            g.kehu_installed = frozenset(["core"]) | frozenset(modules)
        installed = g.kehu_installed
        held = frozenset(n for n in names if n.split(".", 1)[0] in installed and grantable(user.role, n))
        cache[user.id] = held - _withheld(user) if held else held
    return cache[user.id]


@functools.cache
def _grants_and_modules():
    """The installed modules and a role's grants in one round trip, for a user other than the
    signed-in one (whose come with their own statement). Built once per process."""
    return select(*grants_columns(bindparam("role")))


def grants_columns(role):
    """The installed modules and the grants of ``role`` (a column or a parameter) as two
    space-separated columns: read in the statement that loads the signed-in user (core.auth, one
    round trip fewer on every page), which hands them over with ``remember_grants``."""
    from core.models import ModuleState
    modules = select(func.aggregate_strings(ModuleState.name, " ")).scalar_subquery()
    grants = (select(func.aggregate_strings(RoleGrant.permission, " "))
              .where(RoleGrant.role == role).scalar_subquery())
    return modules.label("installed_modules"), grants.label("role_grants")


def remember_grants(user, modules, grants):
    """What ``grants_columns`` read with ``user``, for this request's first ``granted_permissions``."""
    g.kehu_read_grants = (user.id, *_split(modules, grants))


def _split(modules, grants):
    # an aggregate of no rows is NULL: no module, no grant
    return (modules or "").split(), (grants or "").split()


def _unproxied(user):
    """The User behind ``current_user``: each attribute read through Flask-Login's proxy looks the
    user up again, and a page checks dozens of permissions."""
    unwrap = getattr(user, "_get_current_object", None)
    return unwrap() if unwrap is not None else user


def role_permissions(role):
    """What the role is granted (installed modules only), whether or not a module withholds some of
    it from a user for now: for reviews of who holds which right."""
    installed = installed_modules()
    names = db.session.execute(select(RoleGrant.permission).where(RoleGrant.role == role)).scalars()
    return frozenset(n for n in names if n.split(".", 1)[0] in installed and grantable(role, n))


def _withheld(user):
    """What the modules usable by the user withhold now (hook core.withheld_permissions): e.g.
    reveal rights while the user's security training is overdue."""
    from core import hooks
    withheld = set()
    for _module, withhold in hooks.for_user("core.withheld_permissions", user):
        withheld |= set(withhold(user) or ())
    return frozenset(withheld)


def installed_modules():
    from core.models import ModuleState
    if "kehu_installed" not in g:
        g.kehu_installed = frozenset(["core"]) | frozenset(
            db.session.execute(select(ModuleState.name)).scalars())
    return g.kehu_installed


def can(user, permission):
    """Does the user's role hold the permission? Undeclared names are a programming error."""
    if permission not in _DECLARED:
        raise LookupError(f"permission {permission!r} is not declared")
    return permission in granted_permissions(user)


# What an endpoint is, declared on its guard. The start-up check holds each kind to its methods
# and the security tests read the kinds: a new module never means editing a core test.
ENDPOINT_KINDS = {
    "read": "GET only; changes nothing (a page, a list, a search)",
    "download": "GET only; answers a file (a PDF, an attachment, a template); changes nothing",
    "form": "GET shows a form, POST (with the CSRF token) carries out the change",
    "action": "POST only (with the CSRF token); GET answers 405",
}


def _kind(view, kind):
    if kind not in ENDPOINT_KINDS:
        raise ValueError(f"endpoint kind {kind!r} is not one of {', '.join(ENDPOINT_KINDS)}")
    view.kehu_kind = kind
    return view


def require(permission, kind="read"):
    """Guard a view with one declared permission: anonymous → sign-in, refused → 403 (audited).

    ``kind`` says what the endpoint is (see ENDPOINT_KINDS). The permission is checked through
    Flask-Principal: the identity loaded for the request provides the user's granted permissions.
    The name is checked against the declared permissions when the app has loaded every module
    (see `check_endpoints`), so a typo stops start-up instead of failing open."""
    def decorate(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()
            if not PrincipalPermission(PermissionNeed(permission)).can():
                deny(permission)
            return view(*args, **kwargs)

        wrapped.kehu_permission = permission
        return _kind(wrapped, kind)

    return decorate


def deny(permission):
    from core import audit
    db.session.rollback()
    audit.record("core.access.denied", result="denied", permission=permission)
    db.session.commit()
    abort(403)


def public(view=None, *, kind="read"):
    """Mark a view reachable without signing in (sign-in page, health check): ``@public`` or
    ``@public(kind="form")``."""
    def decorate(view):
        view.kehu_public = True
        return _kind(view, kind)

    return decorate(view) if view is not None else decorate


def signed_in(view=None, *, kind="read"):
    """Mark a view any signed-in user may open (home page, sign-out, language)."""
    def decorate(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()
            return view(*args, **kwargs)

        wrapped.kehu_signed_in = True
        return _kind(wrapped, kind)

    return decorate(view) if view is not None else decorate


def endpoint_kinds(app):
    """{endpoint: kind} for every guarded endpoint of the app (static files excluded)."""
    return {endpoint: view.kehu_kind for endpoint, view in app.view_functions.items()
            if hasattr(view, "kehu_kind")}


PUBLIC_ENDPOINTS = {"static", "bootstrap.static"}


def check_endpoints(app):
    """Every endpoint declares a permission, or is explicitly public or for any signed-in user."""
    from core.modules import ModuleError
    for endpoint, view in app.view_functions.items():
        if endpoint in PUBLIC_ENDPOINTS or endpoint.endswith(".static"):
            continue
        perm = getattr(view, "kehu_permission", None)
        if perm is not None:
            if perm not in _DECLARED:
                raise ModuleError(f"module {endpoint.split('.')[0]}: endpoint {endpoint} requires "
                                  f"undeclared permission {perm!r}")
            continue
        if getattr(view, "kehu_public", False) or getattr(view, "kehu_signed_in", False):
            continue
        raise ModuleError(f"module {endpoint.split('.')[0]}: endpoint {endpoint} declares no permission")
    _check_kinds(app)
    for item in app.extensions["kehu.menus"]:
        if item.permission not in _DECLARED:
            raise ModuleError(f"module {item.module}: menu {item.id} needs undeclared permission {item.permission!r}")
        if item.endpoint not in app.view_functions:
            raise ModuleError(f"module {item.module}: menu {item.id} points to unknown endpoint {item.endpoint!r}")


def _check_kinds(app):
    """Each endpoint's declared kind matches the methods its URL rules accept."""
    from core.modules import ModuleError
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC_ENDPOINTS or rule.endpoint.endswith(".static"):
            continue
        kind = getattr(app.view_functions[rule.endpoint], "kehu_kind", None)
        methods = set(rule.methods) - {"HEAD", "OPTIONS"}
        expected = {"read": {"GET"}, "download": {"GET"}, "form": {"GET", "POST"}, "action": {"POST"}}.get(kind)
        if methods != expected:
            raise ModuleError(f"module {rule.endpoint.split('.')[0]}: endpoint {rule.endpoint} is declared "
                              f"{kind!r} but answers {', '.join(sorted(methods))}")


def _on_identity_loaded(sender, identity):
    user = current_user
    if not user or not user.is_authenticated:
        return
    identity.user = user
    identity.provides.add(UserNeed(user.id))
    identity.provides.add(RoleNeed(user.role))
    for name in granted_permissions(user):
        identity.provides.add(PermissionNeed(name))


def init_app(app):
    principal.init_app(app)

    @principal.identity_loader
    def load_identity():
        if current_user.is_authenticated:
            return Identity(current_user.id, "session")
        return None

    identity_loaded.connect_via(app)(_on_identity_loaded)
    app.extensions["kehu.record_rules"] = {}


# --- record rules -----------------------------------------------------------------------------

def add_record_rule(app, model, rule):
    """``rule(actor) -> SQL expression`` deciding which rows of ``model`` the actor may touch."""
    app.extensions["kehu.record_rules"][model] = rule


def record_rule(model):
    """The rule registered for ``model``, or None: what a module keys selects it builds once per
    process by (a rule replaced, e.g. in a test, must not find the old ones)."""
    return current_app.extensions["kehu.record_rules"].get(model)


def scoped(stmt, actor, model=None):
    """Filter a select to the rows the actor may touch. A model without a rule shows nothing."""
    model = model or stmt.column_descriptions[0]["entity"]
    rule = record_rule(model)
    if rule is None or actor is None or not actor.is_authenticated:
        return stmt.where(false())
    return stmt.where(rule(actor))


def ownership_rule(owner_col, department_col, shared=None):
    """The standard remit: heads see their department; sales and service staff their own rows and
    those shared with them (``shared(actor)`` gives that expression); other roles see none. The
    rule is ``bindable``: it uses the actor's id and department only inside SQL (and so must
    ``shared``), so selects under it can be built once per role with an AnyActor."""
    def rule(actor):
        if actor.role == "head" and actor.department_id is not None:
            return department_col == actor.department_id
        if actor.role in ("sales", "service") and actor.department_id is not None:
            # within their current department only: a moved employee leaves the old remit behind
            own = owner_col == actor.id
            return and_(department_col == actor.department_id,
                        or_(own, shared(actor)) if shared is not None else own)
        return false()

    rule.bindable = True
    return rule


class AnyActor:
    """Every actor of one role who has a department, in a select built once per process under a
    ``bindable`` rule: the id and the department are bound parameters, given for the real actor
    at execution by ``actor_params``. Building a select and its SQLAlchemy cache key on every
    request cost more than the database took to run it."""

    is_authenticated = True
    id = bindparam("actor_id")
    department_id = bindparam("actor_department")

    def __init__(self, role):
        self.role = role


def actor_params(actor):
    return {"actor_id": actor.id, "actor_department": actor.department_id}


def bindable(actor, model):
    """Can selects of ``model``'s rows for ``actor`` be built once per role (AnyActor)?"""
    rule = record_rule(model)
    return (getattr(rule, "bindable", False) and getattr(actor, "is_authenticated", False)
            and getattr(actor, "department_id", None) is not None)


def safe_local_url(target, default):
    """``target`` if it is a path on this site, else ``default`` (no open redirects: browsers
    drop tabs and newlines, so "/\t/evil.example" would become "//evil.example")."""
    target = target or ""
    if (not target.startswith("/") or target.startswith("//") or "\\" in target
            or any(ord(c) < 32 or ord(c) == 127 for c in target)):
        return default
    return target


def get_or_404(model, ident, actor=None, options=()):
    """Load one row inside the actor's remit, or answer 404 whether it exists or not. ``options``:
    loader options for what the page shows of it (e.g. ``joinedload(Model.owner)``), best a
    module-level tuple: under a ``bindable`` rule the select is then built once per role."""
    actor = actor or current_user
    if bindable(actor, model):
        stmt, params = _one_row(model, record_rule(model), actor.role, options), actor_params(actor)
    else:
        stmt, params = scoped(select(model), actor).where(model.id == bindparam("row_id")).options(*options), {}
    row = db.session.execute(stmt, {**params, "row_id": ident}).scalar_one_or_none()
    if row is None:
        deny_row(model, ident)
    return row


@functools.lru_cache(maxsize=256)  # bounded: options built anew on each call would each add one
def _one_row(model, rule, role, options):
    return scoped(select(model), AnyActor(role), model).where(model.id == bindparam("row_id")).options(*options)


def deny_row(model, ident):
    """Answer 404 for a row outside the remit (or missing: the same answer), with the attempt on
    record. Every module uses this rather than a bare abort(404)."""
    from core import audit
    row = db.session.get(model, ident)
    exists = row is not None
    # the row's department, when it has one: the anomaly alerts tell probing of other departments
    where = {"row_department": row.department_id} if getattr(row, "department_id", None) is not None else {}
    db.session.rollback()
    audit.record("core.access.row_denied", result="denied", target_type=model.__tablename__,
                 target_id=ident, exists=exists, path=request.path[:200] if has_request_context() else "",
                 **where)
    db.session.commit()
    abort(404)
