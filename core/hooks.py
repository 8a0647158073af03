"""Hooks: named extension points one module offers and others contribute to.

A contribution only runs for a department that has the contributing module enabled, so a
disabled module vanishes from other modules' pages too (e.g. the customer timeline)."""
from flask import current_app


def add(app, hook_name, module, func):
    app.extensions["kehu.hooks"].setdefault(hook_name, []).append((module, func))


def contributions(hook_name, department_id=None, *, all_departments=False):
    """The (module, func) pairs for a hook, in module load order, filtered by enablement."""
    from core.enablement import is_enabled
    pairs = current_app.extensions["kehu.hooks"].get(hook_name, [])
    if all_departments:
        return list(pairs)
    return [(m, f) for m, f in pairs if is_enabled(m, department_id)]


def call(hook_name, *args, department_id=None, all_departments=False, **kwargs):
    """Call every contribution; returns a list of (module, result)."""
    return [(m, f(*args, **kwargs))
            for m, f in contributions(hook_name, department_id, all_departments=all_departments)]
