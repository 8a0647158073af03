"""Menu items of the incident module; the badge counts overdue tickets for those who handle them."""
from core.api import MenuItem

from .permissions import VIEW


def _badge(user):
    from .services import overdue_badge
    return overdue_badge(user)


ALL = (
    MenuItem("incidents.index", {"zh_CN": "信息安全事件", "en": "Security incidents"}, "incidents.index",
             VIEW, 70, badge=_badge),
)
