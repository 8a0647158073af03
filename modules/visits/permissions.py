"""Permissions of the visits module (granted to these roles at install; the administrator edits
the grants afterwards) and the audit actions it writes."""
from core.api import AuditAction, Permission

VIEW = "visits.view"
LOG = "visits.log"
MANAGE_DEPARTMENT = "visits.manage_department"
PRINT = "visits.print"

ALL = (
    Permission(VIEW, {"zh_CN": "查看客户拜访记录", "en": "View customer visits"}, ("head", "sales", "service")),
    Permission(LOG, {"zh_CN": "记录客户拜访，修改和删除本人的记录",
                     "en": "Log customer visits; edit and delete one's own"}, ("head", "sales", "service")),
    Permission(MANAGE_DEPARTMENT, {"zh_CN": "修改和删除本部门的拜访记录，查看本部门待联系客户",
                                   "en": "Edit and delete the department's visits; see its next contacts"},
               ("head",)),
    Permission(PRINT, {"zh_CN": "打印拜访记录表", "en": "Print the visit report"}, ("head", "sales", "service")),
)

AUDIT_ACTIONS = (
    AuditAction("visits.visit.created", {"zh_CN": "记录客户拜访", "en": "Visit logged"}),
    AuditAction("visits.visit.updated", {"zh_CN": "修改拜访记录", "en": "Visit updated"}),
    AuditAction("visits.visit.deleted", {"zh_CN": "删除拜访记录", "en": "Visit deleted"}),
    AuditAction("visits.report.printed", {"zh_CN": "打印拜访记录表", "en": "Visit report printed"}),
)
