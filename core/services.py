"""Platform services shared by the web pages and the CLI: departments, users, modules, grants.

Each function takes the acting user explicitly, checks its input, writes an audit entry and
leaves committing to the caller."""
from __future__ import annotations

import re

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select

from core import access, audit, enablement
from core.db import db
from core.models import ROLES, Department, ModuleEnablement, ModuleState, RoleChange, RoleGrant, User, utcnow

CODE_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{2,64}$")


class ServiceError(ValueError):
    """Bad input for a platform action; the message is shown to the user as it is, next to the
    form field ``field`` names when there is one."""

    def __init__(self, message, field=None):
        super().__init__(message)
        self.field = field


def create_department(actor, code, name):
    code, name = (code or "").strip(), (name or "").strip()
    if not CODE_RE.match(code):
        raise ServiceError(_("Department code must be 1-32 letters, digits, '-' or '_'."), "code")
    if not name or len(name) > 100:
        raise ServiceError(_("Department name must have 1-100 characters."), "name")
    if db.session.execute(select(Department).where(Department.code == code)).scalar_one_or_none():
        raise ServiceError(_("Department %(code)s exists already.", code=code), "code")
    dept = Department(code=code, name=name)
    db.session.add(dept)
    db.session.flush()
    audit.record("core.department.created", target=dept, actor=actor, code=code)
    return dept


def department_by_code(code):
    dept = db.session.execute(select(Department).where(Department.code == code)).scalar_one_or_none()
    if dept is None:
        raise ServiceError(_("No department with code %(code)s.", code=code))
    return dept


def create_user(actor, username, password, role, department=None, display_name="", must_change=False):
    from core.auth import hash_password, validate_new_password
    username = (username or "").strip()
    if not USERNAME_RE.match(username):
        raise ServiceError(_("User name must be 2-64 letters, digits, '.', '-' or '_'."), "username")
    if role not in ROLES:
        raise ServiceError(_("Unknown role %(role)s; roles are: %(roles)s.", role=role, roles=", ".join(ROLES)),
                           "role")
    if role in ("head", "sales", "service") and department is None:
        raise ServiceError(_("A %(role)s user needs a department.", role=role), "department_id")
    if db.session.execute(select(User).where(User.username == username)).scalar_one_or_none():
        raise ServiceError(_("User %(name)s exists already.", name=username), "username")
    problem = validate_new_password(password or "", username)
    if problem:
        raise ServiceError(problem, "password")
    user = User(username=username, display_name=(display_name or username)[:100], role=role,
                department_id=department.id if department else None,
                password_hash=hash_password(password), must_change_password=must_change)
    db.session.add(user)
    db.session.flush()
    audit.record("core.user.created", target=user, actor=actor, role=role,
                 department=department.code if department else "")
    return user


def _crosses_admin_boundary(old, new):
    return (old == "admin") != (new == "admin")


def update_user(actor, user, *, role=None, department=None, active=None):
    """Change an account. Nobody changes their own role; a move between the admin role and a
    data role made in the app waits for the security role's confirmation (a RoleChange)."""
    changed = []
    actor_role = getattr(actor, "role", "cli")  # recorded as it was before any change
    if role is not None and role != user.role:
        if role not in ROLES:
            raise ServiceError(_("Unknown role %(role)s.", role=role))
        if getattr(actor, "id", None) == user.id:
            raise ServiceError(_("You cannot change your own role."))
        if isinstance(actor, User) and _crosses_admin_boundary(user.role, role):
            request_role_change(actor, user, role, department)
            changed.append("role pending")
            role = None
        else:
            user.role = role
            changed.append("role")
    if department is not None and department.id != user.department_id:
        user.department_id = department.id
        changed.append("department")
    if active is not None and active != user.active:
        user.active = active
        changed.append("active")
    if role in ("head", "sales", "service") and user.department_id is None:
        raise ServiceError(_("A %(role)s user needs a department.", role=role))
    applied = [c for c in changed if c != "role pending"]
    if applied:
        user.rotate_session_token()  # changed rights take effect on every open session at once
        audit.record("core.user.updated", target=user, actor=actor, fields=applied, actor_role=actor_role)
    return changed


def reset_password(actor, user):
    """A new one-time password for ``user`` (shown once to the administrator): the account is
    unlocked, every session of it ends, and the password must be changed at the next sign-in."""
    import secrets

    from core.auth import hash_password
    if getattr(actor, "id", None) == user.id:
        raise ServiceError(_("Change your own password on the password page."))
    password = secrets.token_urlsafe(9)
    user.password_hash = hash_password(password)
    user.must_change_password = True
    user.failed_logins, user.locked_until = 0, None
    user.rotate_session_token()
    audit.record("core.user.password_reset", target=user, actor=actor)
    db.session.flush()
    return password


def change_display_name(actor, name):
    name = (name or "").strip()
    if not name or len(name) > 100 or any(not c.isprintable() for c in name):
        raise ServiceError(_("The name must have 1-100 printable characters."))
    if name != actor.display_name:
        actor.display_name = name
        audit.record("core.user.profile_changed", target=actor, actor=actor, fields=["display_name"])
    return name


def request_role_change(actor, user, role, department=None):
    pending = db.session.execute(select(RoleChange).where(
        RoleChange.user_id == user.id, RoleChange.status == "pending")).scalar_one_or_none()
    if pending is not None:
        raise ServiceError(_("A role change of %(name)s is already waiting for confirmation.", name=user.username))
    change = RoleChange(user_id=user.id, from_role=user.role, to_role=role, requested_by=actor.id,
                        department_id=department.id if department else user.department_id)
    db.session.add(change)
    db.session.flush()
    audit.record("core.user.role_change_requested", target=user, actor=actor, from_role=user.role,
                 to_role=role, request=change.id, actor_role=actor.role)
    return change


def decide_role_change(actor, change, confirm):
    """The second person (core.roles.confirm, by default the security role) confirms or refuses."""
    if change.status != "pending":
        raise ServiceError(_("This role change has been decided already."))
    if actor.id in (change.requested_by, change.user_id):
        raise ServiceError(_("A role change must be confirmed by someone else than the requester and the account holder."))
    change.status, change.decided_by, change.decided_at = ("confirmed" if confirm else "refused"), actor.id, utcnow()
    user = change.user
    if confirm:
        if user.role != change.from_role:
            raise ServiceError(_("The account's role has changed since the request; ask again."))
        if change.to_role in ("head", "sales", "service") and change.department_id is None:
            raise ServiceError(_("A %(role)s user needs a department.", role=change.to_role))
        user.role, user.department_id = change.to_role, change.department_id
        user.rotate_session_token()
    audit.record("core.user.role_change_confirmed" if confirm else "core.user.role_change_refused",
                 target=user, actor=actor, request=change.id, from_role=change.from_role,
                 to_role=change.to_role, requested_by=change.requested_by, actor_role=actor.role)
    db.session.flush()
    return change


# --- modules --------------------------------------------------------------------------------------

def module_info(name):
    info = current_app.extensions["kehu.modules"].get(name)
    if info is None:
        raise ServiceError(_("No module named %(name)s.", name=name))
    return info


def installed_state(name):
    return db.session.get(ModuleState, name)


def run_migrations(target):
    """Upgrade the schema to ``target`` (e.g. "core@head", "grading@head", "heads") and commit."""
    from core import lifecycle
    lifecycle.migrate(target)
    db.session.commit()


def install_module(actor, name):
    """Create the module's tables through its migrations (after its dependencies), grant its
    permissions to their default roles and record it as installed."""
    info = module_info(name)
    installed = []
    for dep in info.manifest.depends:
        if installed_state(dep) is None:
            installed += install_module(actor, dep)
    if installed_state(name) is not None:
        return installed
    if current_app.config.get("RUN_MIGRATIONS", True) and info.contributions["migrations"]:
        from core import lifecycle  # in this transaction: a failure leaves nothing half-installed
        lifecycle.run_or_fail(actor, name, "install", f"{name}@head")
    db.session.add(ModuleState(name=name, version=info.manifest.version))
    grant_defaults(name)
    audit.record("core.module.installed", actor=actor, target_type="module", target_id=name,
                 version=info.manifest.version)
    db.session.flush()
    enablement.changed()
    return installed + [name]


def grant_defaults(module):
    """Grant each permission of the module (core's too) to its default roles."""
    existing = {tuple(r) for r in db.session.execute(select(RoleGrant.role, RoleGrant.permission))}
    declared = access.declared()
    info = current_app.extensions["kehu.modules"].get(module)
    # the permissions this app's copy of the module declared: the declarations are per process
    names = info.contributions["permissions"] if info else [p for p in declared if p.split(".")[0] == module]
    for name in names:
        perm = declared[name]
        for role in perm.roles:
            if (role, perm.name) not in existing and access.grantable(role, perm.name):
                db.session.add(RoleGrant(role=role, permission=perm.name))


def _check_enable(actor, name, department):
    info = module_info(name)
    if installed_state(name) is None:
        raise ServiceError(_("Module %(name)s is not installed.", name=name))
    if info.manifest.required:
        raise ServiceError(_("Module %(name)s is always enabled.", name=name))
    if actor is not None and getattr(actor, "role", None) == "head" and actor.department_id != department.id:
        raise ServiceError(_("A department head manages only their own department."))
    return info


def enable_module(actor, name, department):
    info = _check_enable(actor, name, department)
    for dep in info.manifest.depends:
        dep_info = module_info(dep)
        if not dep_info.manifest.required and not _is_enabled_row(dep, department):
            raise ServiceError(_("Enable %(dep)s first: %(name)s depends on it.", dep=dep, name=name))
    if _is_enabled_row(name, department):
        return False
    db.session.add(ModuleEnablement(module=name, department_id=department.id))
    audit.record("core.module.enabled", actor=actor, target_type="module", target_id=name,
                 department=department.code)
    db.session.flush()
    enablement.changed()
    return True


def disable_module(actor, name, department):
    """Stop a department using a module. Its data stays and reappears when enabled again."""
    _check_enable(actor, name, department)
    row = _is_enabled_row(name, department)
    if row is None:
        return False
    for other, info in current_app.extensions["kehu.modules"].items():
        if name in info.manifest.depends and _is_enabled_row(other, department):
            raise ServiceError(_("Disable %(other)s first: it depends on %(name)s.", other=other, name=name))
    db.session.delete(row)
    audit.record("core.module.disabled", actor=actor, target_type="module", target_id=name,
                 department=department.code)
    db.session.flush()
    enablement.changed()
    return True


def _is_enabled_row(name, department):
    return db.session.execute(select(ModuleEnablement).where(
        ModuleEnablement.module == name, ModuleEnablement.department_id == department.id)).scalar_one_or_none()


def set_grants(actor, role, permissions):
    """Replace the grants of one role with ``permissions`` (declared names only)."""
    if role not in ROLES:
        raise ServiceError(_("Unknown role %(role)s.", role=role))
    declared = access.declared()
    unknown = sorted(set(permissions) - set(declared))
    if unknown:
        raise ServiceError(_("Unknown permissions: %(names)s.", names=", ".join(unknown)))
    forbidden = sorted(p for p in permissions if not access.grantable(role, p))
    if forbidden:
        raise ServiceError(_("The administrator role never holds customer-data or audit permissions: "
                             "%(names)s.", names=", ".join(forbidden)))
    current = {g.permission: g for g in db.session.execute(
        select(RoleGrant).where(RoleGrant.role == role)).scalars()}
    added = sorted(set(permissions) - set(current))
    removed = sorted(p for p in current if p not in permissions and p in declared)
    for name in added:
        db.session.add(RoleGrant(role=role, permission=name))
    for name in removed:
        db.session.delete(current[name])
    if added or removed:
        audit.record("core.role.grants_changed", actor=actor, target_type="role", target_id=role,
                     added=added, removed=removed)
    db.session.flush()
    return added, removed


def deactivate_user(actor, user):
    """Close an account (a leaver): every open session of it ends at once. Audited."""
    return update_user(actor, user, active=False)
