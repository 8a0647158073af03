"""Menu items of the customer archives."""
from core.api import MenuItem

from .permissions import REQUEST, VIEW

ALL = (
    MenuItem("archives.index", {"zh_CN": "客户档案", "en": "Archives"}, "archives.index", VIEW, 30),
    MenuItem("archives.incomplete", {"zh_CN": "待补档案", "en": "Incomplete archives"},
             "archives.incomplete", VIEW, 31),
    MenuItem("archives.requests", {"zh_CN": "查阅借阅", "en": "View/borrow requests"},
             "archives.requests", REQUEST, 32),
)
