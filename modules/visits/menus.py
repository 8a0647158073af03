"""Menu items of the visits module."""
from core.api import MenuItem

from .permissions import VIEW

ALL = (
    MenuItem("visits.index", {"zh_CN": "客户拜访", "en": "Customer visits"}, "visits.index", VIEW, 40),
    MenuItem("visits.due", {"zh_CN": "待联系", "en": "Next contacts"}, "visits.due", VIEW, 41),
)
