"""Navigation built from the menu items modules declare, filtered per user."""
from flask import current_app, g, url_for
from flask_login import current_user

from core import access
from core.enablement import is_enabled
from core.i18n import pick


def add(app, item):
    app.extensions["kehu.menus"].append(item)


def visible(user=None):
    """Menu entries the user may see: permission held and module enabled in their department (or
    company-wide for their role); ``badge`` is the item's count, 0 when it has none."""
    user = user or current_user._get_current_object()
    if not user.is_authenticated:
        return []
    cache = g.setdefault("kehu_menus", {})  # a page lists the menu twice (bar and home cards):
    if user.id in cache:                     # badge counts are queried once per request
        return cache[user.id]
    items = cache[user.id] = []
    for item in sorted(current_app.extensions["kehu.menus"], key=lambda i: (i.order, i.id)):
        if not access.can(user, item.permission):
            continue
        if not is_enabled(item.module, user.department_id, user=user):
            continue
        items.append({"id": item.id, "label": pick(item.label), "url": url_for(item.endpoint),
                      "endpoint": item.endpoint, "badge": (item.badge(user) or 0) if item.badge else 0})
    return items
