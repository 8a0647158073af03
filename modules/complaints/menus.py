"""Menu items of the complaints module."""
from core.api import MenuItem

ALL = (
    MenuItem("complaints.index", {"zh_CN": "客户投诉", "en": "Complaints"}, "complaints.index",
             "complaints.view", 30),
    MenuItem("complaints.stats", {"zh_CN": "投诉统计", "en": "Complaint statistics"}, "complaints.stats",
             "complaints.stats", 31),
)
