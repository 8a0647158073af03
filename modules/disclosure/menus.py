"""Menu items of the disclosure module; the badge counts requests waiting for the user's decision."""
from core.api import MenuItem

from .permissions import VIEW


def _badge(user):
    from .services import waiting_count
    return waiting_count(user) or None


ALL = (
    MenuItem("disclosure.index", {"zh_CN": "对外提供与明文导出", "en": "Disclosures"}, "disclosure.index",
             VIEW, 75, badge=_badge),
)
