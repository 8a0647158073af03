"""Menu items of the complaints module; the badge counts the open complaints the user handles."""
from core.api import MenuItem


def _badge(user):
    from .services import my_open_count
    return my_open_count(user)


ALL = (
    MenuItem("complaints.index", {"zh_CN": "客户投诉", "en": "Complaints"}, "complaints.index",
             "complaints.view", 30, badge=_badge),
    MenuItem("complaints.stats", {"zh_CN": "投诉统计", "en": "Complaint statistics"}, "complaints.stats",
             "complaints.stats", 31),
)
