"""Permissions and audit actions of the feedback module. Grants are data the administrator
edits; these are the roles that receive them when the module is installed."""
from core.api import AuditAction, Permission

STAFF = ("head", "sales", "service")

VIEW = "feedback.view"
FILL = "feedback.fill"
LINK = "feedback.link"
PRINT = "feedback.print"
PLAN = "feedback.plan"
DESIGN = "feedback.design"
SUMMARY = "feedback.summary"

ALL = (
    Permission(VIEW, {"zh_CN": "查看客户信息反馈", "en": "View customer feedback"}, STAFF),
    Permission(FILL, {"zh_CN": "填写客户信息反馈表", "en": "Fill feedback forms"}, STAFF),
    Permission(LINK, {"zh_CN": "生成客户自填链接", "en": "Create one-time customer links"}, STAFF),
    Permission(PRINT, {"zh_CN": "打印客户信息反馈表", "en": "Print feedback forms"}, STAFF),
    Permission(PLAN, {"zh_CN": "制定和完成客户跟踪计划", "en": "Record and complete follow-up plans"}, STAFF),
    Permission(DESIGN, {"zh_CN": "设计客户信息反馈表模板", "en": "Design feedback templates"}, ("head",)),
    Permission(SUMMARY, {"zh_CN": "查看和导出反馈汇总", "en": "View and export feedback summaries"}, ("head",)),
)

AUDIT_ACTIONS = (
    AuditAction("feedback.template.created", {"zh_CN": "新建反馈表模板", "en": "Feedback template created"}),
    AuditAction("feedback.template.updated", {"zh_CN": "修改反馈表模板", "en": "Feedback template edited"}),
    AuditAction("feedback.template.published", {"zh_CN": "发布反馈表模板新版本",
                                                "en": "Feedback template version published"}),
    AuditAction("feedback.response.created", {"zh_CN": "填写客户信息反馈表", "en": "Feedback form filled"}),
    AuditAction("feedback.response.seen", {"zh_CN": "查看客户自填反馈表", "en": "Customer-filled form seen"}),
    AuditAction("feedback.link.created", {"zh_CN": "生成客户自填链接", "en": "One-time link created"}),
    AuditAction("feedback.link.used", {"zh_CN": "客户通过链接提交反馈表", "en": "One-time link used"}),
    AuditAction("feedback.link.refused", {"zh_CN": "拒绝客户自填链接", "en": "One-time link refused"}),
    AuditAction("feedback.form.printed", {"zh_CN": "打印客户信息反馈表", "en": "Feedback form printed"}),
    AuditAction("feedback.plan.created", {"zh_CN": "制定客户跟踪计划", "en": "Follow-up plan recorded"}),
    AuditAction("feedback.action.completed", {"zh_CN": "完成跟踪措施", "en": "Follow-up action completed"}),
    AuditAction("feedback.summary.exported", {"zh_CN": "导出反馈汇总", "en": "Feedback summary exported"}),
    AuditAction("feedback.handover", {"zh_CN": "移交反馈和跟踪措施", "en": "Feedback and actions handed over"}),
)
