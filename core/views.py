"""The core's pages: home, health, language, administration and the audit trail viewer."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select, text

from core import access, lifecycle, services
from core.access import require, signed_in
from core.db import db
from core.i18n import LOCALES
from core.models import ROLE_LABELS, ROLES, Department, ModuleEnablement, RoleChange, RoleGrant, User
from core.modules import MenuItem, Permission

CORE_PERMISSIONS = (
    Permission("core.modules.view", {"zh_CN": "查看模块", "en": "View modules"}, ("admin", "head")),
    Permission("core.modules.install", {"zh_CN": "安装模块", "en": "Install modules"}, ("admin",)),
    Permission("core.modules.enable", {"zh_CN": "为部门启用或停用模块", "en": "Enable modules for a department"},
               ("admin", "head")),
    Permission("core.roles.manage", {"zh_CN": "管理角色权限", "en": "Manage role permissions"}, ("admin",)),
    Permission("core.users.manage", {"zh_CN": "管理用户", "en": "Manage users"}, ("admin",)),
    Permission("core.departments.manage", {"zh_CN": "管理部门", "en": "Manage departments"}, ("admin",)),
    Permission("core.audit.view", {"zh_CN": "查看审计日志", "en": "View the audit trail"}, ("security",)),
    Permission("core.roles.confirm", {"zh_CN": "确认管理员与业务角色之间的变更",
                                      "en": "Confirm moves between the administrator and data roles"},
               ("security",)),
)

CORE_MENUS = (
    MenuItem("core.audit", {"zh_CN": "审计日志", "en": "Audit trail"}, "audit.trail", "core.audit.view", 800),
    MenuItem("core.role_changes", {"zh_CN": "角色变更确认", "en": "Role changes"}, "admin.role_changes",
             "core.roles.confirm", 810),
    MenuItem("core.modules", {"zh_CN": "模块管理", "en": "Modules"}, "admin.modules", "core.modules.view", 900),
    MenuItem("core.users", {"zh_CN": "用户", "en": "Users"}, "admin.users", "core.users.manage", 910),
    MenuItem("core.departments", {"zh_CN": "部门", "en": "Departments"}, "admin.departments",
             "core.departments.manage", 920),
    MenuItem("core.roles", {"zh_CN": "角色权限", "en": "Roles"}, "admin.roles", "core.roles.manage", 930),
)

main = Blueprint("main", __name__)
admin = Blueprint("admin", __name__, url_prefix="/admin")


@main.route("/")
@signed_in
def index():
    """The work queue: what each module the department uses has for this user to do now."""
    from core import hooks
    order = {"danger": 0, "warning": 1, "info": 2}
    items = [item for _module, found in hooks.call("core.work_items", current_user._get_current_object(),
                                                   department_id=current_user.department_id)
             for item in found or () if item.count]
    items.sort(key=lambda i: (order.get(i.level, 3), -i.count))
    return render_template("index.html", work=items)


@main.route("/healthz")
@access.public
def healthz():
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:  # the health check reports, it never raises
        return {"status": "error", "database": "unreachable"}, 503
    return {"status": "ok"}


@main.route("/language", methods=["POST"])
@access.public(kind="action")
def language():
    locale = request.form.get("locale")
    if locale in LOCALES:
        session["locale"] = locale
        if current_user.is_authenticated:
            current_user.locale = locale
            db.session.commit()
    return redirect(access.safe_local_url(request.form.get("next"), url_for("main.index")))


# --- modules ------------------------------------------------------------------------------------

@admin.route("/modules")
@require("core.modules.view")
def modules():
    enabled = {tuple(r) for r in db.session.execute(select(ModuleEnablement.module, ModuleEnablement.department_id))}
    if current_user.role == "head":
        departments = [current_user.department] if current_user.department else []
    else:
        departments = db.session.execute(select(Department).order_by(Department.code)).scalars().all()
    return render_template("admin/modules.html", modules=lifecycle.statuses().values(), lifecycle=lifecycle,
                           enabled=enabled, departments=departments,
                           can_install=access.can(current_user, "core.modules.install"),
                           can_enable=access.can(current_user, "core.modules.enable"),
                           developer=current_user.role == "admin")


@admin.route("/modules/<name>/install", methods=["POST"])
@require("core.modules.install", kind="action")
def install_module(name):
    try:
        done = services.install_module(current_user, name)
        db.session.commit()
    except services.ServiceError as exc:
        db.session.rollback()
        flash(str(exc), "danger")
    else:
        if done:
            flash(_("Installed: %(names)s.", names=", ".join(done)), "success")
    return redirect(url_for("admin.modules"))


@admin.route("/modules/<name>/upgrade", methods=["POST"])
@require("core.modules.install", kind="action")
def upgrade_module(name):
    try:
        done = lifecycle.upgrade_module(current_user, name)
        db.session.commit()
    except services.ServiceError as exc:
        db.session.rollback()
        flash(str(exc), "danger")
    else:
        flash(_("Upgraded: %(modules)s.", modules=", ".join(f"{m} {old} → {new}" for m, old, new in done)),
              "success")
    return redirect(url_for("admin.modules"))


@admin.route("/modules/<name>/uninstall", methods=["GET", "POST"])
@require("core.modules.install", kind="form")
def uninstall_module(name):
    """GET: what uninstalling would remove, and the confirmation; POST: uninstall."""
    try:
        plan = lifecycle.uninstall_plan(name)
    except services.ServiceError:
        abort(404)
    if request.method == "GET":
        return render_template("admin/module_uninstall.html", plan=plan, lifecycle=lifecycle)
    try:
        done = lifecycle.uninstall_module(current_user, name, purge=request.form.get("purge") == "1")
        db.session.commit()
    except services.ServiceError as exc:
        db.session.rollback()
        flash(str(exc), "danger")
        return redirect(url_for("admin.uninstall_module", name=name))
    if plan.status.state == lifecycle.MISSING:
        flash(_("Forgot missing module %(name)s; its tables remain in the database: %(tables)s.", name=name,
                tables=", ".join(done.kept)) if done.kept else _("Forgot missing module %(name)s.", name=name),
              "success")
    elif done.purged:
        flash(_("Uninstalled %(name)s and deleted %(counts)s.", name=name,
                counts=lifecycle.counts_text(done.purged)), "success")
    else:
        flash(_("Uninstalled %(name)s.", name=name), "success")
    return redirect(url_for("admin.modules"))


@admin.route("/modules/<name>/disable", methods=["GET"])
@require("core.modules.enable")
def confirm_disable_module(name):
    """The confirmation before a module is switched off for a department (the POST does it)."""
    info = current_app.extensions["kehu.modules"].get(name)
    dept = db.session.get(Department, request.args.get("department_id", type=int) or 0)
    if info is None or info.manifest.required or dept is None or (
            current_user.role != "admin" and dept.id != current_user.department_id):
        abort(404)
    return render_template("admin/module_disable.html", info=info, dept=dept)


@admin.route("/modules/<name>/<any(enable, disable):action>", methods=["POST"])
@require("core.modules.enable", kind="action")
def toggle_module(name, action):
    try:
        dept_id = request.form.get("department_id", type=int)
        dept = db.session.get(Department, dept_id) if dept_id else None
        if dept is None:
            raise services.ServiceError(_("Choose a department."))
        change = services.enable_module if action == "enable" else services.disable_module
        change(current_user, name, dept)
        db.session.commit()
    except services.ServiceError as exc:
        db.session.rollback()
        flash(str(exc), "danger")
    else:
        flash(_("Saved."), "success")
    return redirect(url_for("admin.modules"))


# --- roles, users, departments --------------------------------------------------------------------

@admin.route("/roles", methods=["GET", "POST"])
@require("core.roles.manage", kind="form")
def roles():
    declared = sorted(access.declared().values(), key=lambda p: p.name)
    installed = access.installed_modules()
    declared = [p for p in declared if p.module in installed]
    if request.method == "POST":
        role = request.form.get("role", "")
        try:
            services.set_grants(current_user, role, request.form.getlist("permission"))
            db.session.commit()
            flash(_("Saved."), "success")
        except services.ServiceError as exc:
            db.session.rollback()
            flash(str(exc), "danger")
        return redirect(url_for("admin.roles"))
    grants = {tuple(r) for r in db.session.execute(select(RoleGrant.role, RoleGrant.permission))}
    return render_template("admin/roles.html", declared=declared, roles=ROLES, role_labels=ROLE_LABELS,
                           grants=grants)


@admin.route("/users", methods=["GET", "POST"])
@require("core.users.manage", kind="form")
def users():
    departments = db.session.execute(select(Department).order_by(Department.code)).scalars().all()
    errors, status = {}, 200
    if request.method == "POST":
        f = request.form
        try:
            dept = db.session.get(Department, int(f["department_id"])) if f.get("department_id") else None
            services.create_user(current_user, f.get("username"), f.get("password"), f.get("role"), dept,
                                 f.get("display_name", ""), must_change=True)
            db.session.commit()
            flash(_("User created; they must change the password at first sign-in."), "success")
            return redirect(url_for("admin.users"))
        except services.ServiceError as exc:
            db.session.rollback()
            errors, status = _field_errors(exc)
    rows = db.session.execute(select(User).order_by(User.username)).scalars().all()
    return render_template("admin/users.html", users=rows, departments=departments, roles=ROLES,
                           role_labels=ROLE_LABELS, errors=errors,
                           typed=request.form if request.method == "POST" else {}), status


def _field_errors(exc):
    """({field: message}, 400) for a form's inline errors; a message about no one field is flashed."""
    if getattr(exc, "field", None):
        return {exc.field: str(exc)}, 400
    flash(str(exc), "danger")
    return {}, 400


@admin.route("/users/<int:user_id>", methods=["POST"])
@require("core.users.manage", kind="action")
def update_user(user_id):
    user = db.session.get(User, user_id) or abort(404)
    f = request.form
    try:
        dept = db.session.get(Department, int(f["department_id"])) if f.get("department_id") else None
        changed = services.update_user(current_user, user, role=f.get("role") or None, department=dept,
                                       active=f.get("active") == "1")
        db.session.commit()
        if "role pending" in changed:
            flash(_("The role change waits for confirmation by the security officer."), "warning")
        else:
            flash(_("Saved."), "success")
    except services.ServiceError as exc:
        db.session.rollback()
        flash(str(exc), "danger")
    return redirect(url_for("admin.users"))


@admin.route("/users/<int:user_id>/reset-password", methods=["POST"])
@require("core.users.manage", kind="action")
def reset_password(user_id):
    user = db.session.get(User, user_id) or abort(404)
    try:
        password = services.reset_password(current_user, user)
        db.session.commit()
    except services.ServiceError as exc:
        db.session.rollback()
        flash(str(exc), "danger")
        return redirect(url_for("admin.users"))
    # shown on this page only, never put in the (signed, not encrypted) session cookie
    return render_template("admin/password_reset.html", user=user, password=password)


@admin.route("/role-changes")
@require("core.roles.confirm")
def role_changes():
    rows = db.session.execute(select(RoleChange).order_by(RoleChange.status != "pending", RoleChange.id.desc())
                              .limit(100)).scalars().all()
    return render_template("admin/role_changes.html", changes=rows, role_labels=ROLE_LABELS)


@admin.route("/role-changes/<int:change_id>/<any(confirm, refuse):decision>", methods=["POST"])
@require("core.roles.confirm", kind="action")
def decide_role_change(change_id, decision):
    change = db.session.get(RoleChange, change_id) or abort(404)
    try:
        services.decide_role_change(current_user, change, decision == "confirm")
        db.session.commit()
        flash(_("Saved."), "success")
    except services.ServiceError as exc:
        db.session.rollback()
        flash(str(exc), "danger")
    return redirect(url_for("admin.role_changes"))


@admin.route("/departments", methods=["GET", "POST"])
@require("core.departments.manage", kind="form")
def departments():
    errors, status = {}, 200
    if request.method == "POST":
        try:
            services.create_department(current_user, request.form.get("code"), request.form.get("name"))
            db.session.commit()
            flash(_("Saved."), "success")
            return redirect(url_for("admin.departments"))
        except services.ServiceError as exc:
            db.session.rollback()
            errors, status = _field_errors(exc)
    counts = dict(db.session.execute(select(User.department_id, func.count()).group_by(User.department_id)).all())
    rows = db.session.execute(select(Department).order_by(Department.code)).scalars().all()
    return render_template("admin/departments.html", departments=rows, counts=counts, errors=errors,
                           typed=request.form if request.method == "POST" else {}), status


def init_app(app):
    from core import menus
    for perm in CORE_PERMISSIONS:
        access.declare(perm)
    for item in CORE_MENUS:
        menus.add(app, item)
    app.register_blueprint(main)
    app.register_blueprint(admin)
    from core import audit_views
    app.register_blueprint(audit_views.bp)
