"""Permissions, audit actions and menu items of the oversight module."""
from core.api import AuditAction, MenuItem, Permission

MANAGE = "oversight.manage"
SELFCHECK = "oversight.selfcheck"
ALERTS = "oversight.alerts"

ALL = (
    Permission(MANAGE, {"zh_CN": "发布客户信息管理制度、记录培训和保密审查",
                        "en": "Publish the customer-information policy, record training and confidentiality reviews"},
               ("security",)),
    Permission(SELFCHECK, {"zh_CN": "查看安全自查", "en": "View the security self-check"}, ("security",)),
    Permission(ALERTS, {"zh_CN": "查看和处理异常告警", "en": "View and handle anomaly alerts"}, ("security",)),
)


def _a(name, zh, en):
    return AuditAction(name, {"zh_CN": zh, "en": en})


AUDIT_ACTIONS = (
    _a("oversight.policy.published", "发布客户信息管理制度", "Policy published"),
    _a("oversight.policy.acknowledged", "确认已阅读客户信息管理制度", "Policy acknowledged"),
    _a("oversight.training.recorded", "记录安全培训", "Training recorded"),
    _a("oversight.review.recorded", "记录保密审查", "Confidentiality review recorded"),
    _a("oversight.alert.acknowledged", "确认异常告警", "Alert acknowledged"),
    _a("oversight.alert.escalated", "异常告警转为信息安全事件", "Alert turned into an incident"),
)


def _alert_badge(user):
    from .alerts import open_count
    return open_count()


MENUS = (
    MenuItem("oversight.alerts", {"zh_CN": "异常告警", "en": "Anomaly alerts"}, "oversight.alerts", ALERTS, 72,
             badge=_alert_badge),
    MenuItem("oversight.selfcheck", {"zh_CN": "安全自查", "en": "Security self-check"}, "oversight.selfcheck",
             SELFCHECK, 73),
    MenuItem("oversight.policy", {"zh_CN": "制度确认", "en": "Policy acknowledgement"}, "oversight.policy",
             MANAGE, 74),
    MenuItem("oversight.trainings", {"zh_CN": "培训记录", "en": "Training records"}, "oversight.trainings",
             MANAGE, 75),
    MenuItem("oversight.reviews", {"zh_CN": "保密审查", "en": "Confidentiality reviews"}, "oversight.reviews",
             MANAGE, 76),
)
