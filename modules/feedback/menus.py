"""Menu items of the feedback module."""
from core.api import MenuItem

ALL = (
    MenuItem("feedback.index", {"zh_CN": "客户信息反馈", "en": "Customer feedback"}, "feedback.index",
             "feedback.view", 40),
    MenuItem("feedback.actions", {"zh_CN": "跟踪措施", "en": "Follow-up actions"}, "feedback.actions",
             "feedback.plan", 41),
)
