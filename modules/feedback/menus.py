"""Menu items of the feedback module; the badge counts forms customers filled that the owner has
not read yet."""
from core.api import MenuItem


def _unseen(user):
    from .services import unseen_count
    return unseen_count(user)


ALL = (
    MenuItem("feedback.index", {"zh_CN": "客户信息反馈", "en": "Customer feedback"}, "feedback.index",
             "feedback.view", 40, badge=_unseen),
    MenuItem("feedback.actions", {"zh_CN": "跟踪措施", "en": "Follow-up actions"}, "feedback.actions",
             "feedback.plan", 41),
)
