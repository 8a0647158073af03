"""Hooks: named extension points one module offers and others contribute to.

The offering module declares each hook with ``reg.offers_hook(HookSpec(...))`` (core offers
``core.*`` hooks below); a contribution to a hook nobody offers stops start-up. A contribution
only runs for a department that has the contributing module enabled, so a disabled module
vanishes from other modules' pages too (e.g. the customer timeline)."""
from dataclasses import dataclass

from flask import current_app

from core.modules import HookSpec


@dataclass(frozen=True)
class WorkItem:
    """One line of the home page's work queue. ``level``: "danger" (overdue), "warning" (due
    soon or waiting for the user) or "info"."""

    label: str
    count: int
    url: str
    level: str = "info"

# The hooks core itself calls.
CORE_HOOKS = (
    HookSpec("core.demo", "demo(departments, users) -> str | None",
             "kehu init --demo: add the module's demo data; the text is printed as one line."),
    HookSpec("core.reindex", "reindex() -> {str: int}",
             "kehu keys rotate: recompute the module's blind indexes under the new index key; "
             "returns counts to print."),
    HookSpec("core.reencrypt", "reencrypt() -> {str: int}",
             "kehu keys rotate: in the rotation's transaction, re-encrypt what the module keeps "
             "outside Encrypted fields (files) that is not under the current cipher suite "
             "(crypto.is_current); Encrypted fields core re-encrypts itself. Returns counts to print."),
    HookSpec("core.work_items", "work_items(user) -> [WorkItem]",
             "The home page's work queue: what the user has to do now in this module, as counts "
             "with a link (approvals to give, overdue items, records to complete). Called for the "
             "modules the user's department has enabled; items with a count of 0 are not shown."),
    HookSpec("core.audit_targets", "audit_targets() -> [AuditTarget]",
             "The audit trail page: how rows of the module's tables are named for people and "
             "found from what they type (e.g. customer numbers)."),
    HookSpec("core.destruction_replayed", "destruction_replayed(entries) -> None",
             "kehu restore, after the destruction ledger deleted the data keys it names again: "
             "finish what the destruction did (null fields, drop files) for those keys; each entry "
             "has key_id, ref (\"table:id\") and at."),
    HookSpec("core.gates", "gate(user, endpoint) -> str | None",
             "Before any page of a signed-in user (after the forced password change): a URL to send "
             "the user to first (e.g. a policy to acknowledge), or None. Return None for the gate's own "
             "endpoints. Called for the modules usable by the user (their department or company role)."),
    HookSpec("core.withheld_permissions", "withheld_permissions(user) -> set[str]",
             "Permissions the user's role holds but the user may not use now (e.g. reveal rights while "
             "training is overdue); applied inside core's one permission check, so `require`, `can` "
             "and menus all follow. Called once per request and user, for the modules usable by the user."),
    HookSpec("core.selfcheck", "selfcheck() -> [Finding]",
             "The security self-check (page and `kehu selfcheck`): the module's findings, each with "
             "its status (ok/warning/fail) and what to do. Called for installed modules."),
    HookSpec("core.audit_appended", "audit_appended(last_id) -> None",
             "After a request whose transaction committed audit entries (up to entry ``last_id``), in a "
             "new transaction that core commits; also for installed modules only. Must be cheap: read "
             "from the last entry the module has seen. Errors are logged and rolled back, never shown."),
)


def init_app(app):
    app.extensions["kehu.hooks"] = {}
    app.extensions["kehu.hooks_offered"] = {spec.name: spec for spec in CORE_HOOKS}


def offer(app, spec):
    from core.modules import ModuleError
    offered = app.extensions["kehu.hooks_offered"]
    if spec.name in offered:
        raise ModuleError(f"module {spec.module}: hook {spec.name!r} offered twice")
    offered[spec.name] = spec


def is_offered(app, hook_name):
    return hook_name in app.extensions["kehu.hooks_offered"]


def offered(app=None):
    """{hook name: HookSpec} of every hook on offer, for `kehu modules show` and the README."""
    return dict((app or current_app).extensions["kehu.hooks_offered"])


def add(app, hook_name, module, func):
    app.extensions["kehu.hooks"].setdefault(hook_name, []).append((module, func))


def contributions(hook_name, department_id=None, *, all_departments=False):
    """The (module, func) pairs for a hook, in module load order: of the modules enabled in
    ``department_id``, or with ``all_departments`` of every installed module (a module that is
    loaded but not installed has no tables, so its contributions must never run).

    A hook of a module that is not loaded (an optional ``uses``) has none; a hook name that its
    loaded owner does not offer is a programming error."""
    from core.enablement import is_enabled, is_installed
    owner = hook_name.split(".", 1)[0]
    if not is_offered(current_app, hook_name) and (owner == "core" or owner in current_app.extensions["kehu.modules"]):
        raise LookupError(f"hook {hook_name!r} is not offered by {owner}")
    pairs = current_app.extensions["kehu.hooks"].get(hook_name, [])
    if all_departments:
        return [(m, f) for m, f in pairs if is_installed(m)]
    return [(m, f) for m, f in pairs if is_enabled(m, department_id)]


def call(hook_name, *args, department_id=None, all_departments=False, **kwargs):
    """Call every contribution; returns a list of (module, result)."""
    return [(m, f(*args, **kwargs))
            for m, f in contributions(hook_name, department_id, all_departments=all_departments)]


def for_user(hook_name, user):
    """The (module, func) pairs of a hook whose module ``user`` may use: enabled in their
    department, or company-wide for their role (core.gates, core.withheld_permissions)."""
    from core.enablement import is_enabled
    return [(m, f) for m, f in contributions(hook_name, all_departments=True)
            if is_enabled(m, user.department_id, user=user)]


def for_installed(hook_name):
    """The (module, func) pairs of a hook whose module is installed (core.selfcheck,
    core.audit_appended): company-wide work that no department switches off."""
    return contributions(hook_name, all_departments=True)
