"""Permissions and audit actions of the complaints module. Grants are data the administrator
edits; these are the roles that receive them when the module is installed."""
from core.api import AuditAction, Permission

STAFF = ("head", "sales", "service")

VIEW = "complaints.view"
CREATE = "complaints.create"
HANDLE = "complaints.handle"
ASSIGN = "complaints.assign"
CONFIGURE = "complaints.configure"
STATS = "complaints.stats"
PRINT = "complaints.print"

ALL = (
    Permission(VIEW, {"zh_CN": "查看客户投诉", "en": "View complaints"}, STAFF),
    Permission(CREATE, {"zh_CN": "登记客户投诉", "en": "Register complaints"}, STAFF),
    Permission(HANDLE, {"zh_CN": "处理本人负责的投诉", "en": "Handle one's own complaints"}, STAFF),
    Permission(ASSIGN, {"zh_CN": "指派、关闭本部门任何投诉", "en": "Assign and close any complaint of the department"},
               ("head",)),
    Permission(CONFIGURE, {"zh_CN": "配置投诉分类和处理时限", "en": "Configure complaint categories and deadlines"},
               ("head",)),
    Permission(STATS, {"zh_CN": "查看投诉统计和超期清单", "en": "View complaint statistics and overdue lists"},
               ("head",)),
    Permission(PRINT, {"zh_CN": "打印投诉处理单", "en": "Print the complaint form"}, STAFF),
)

AUDIT_ACTIONS = (
    AuditAction("complaints.complaint.created", {"zh_CN": "登记投诉", "en": "Complaint registered"}),
    AuditAction("complaints.complaint.updated", {"zh_CN": "修改投诉", "en": "Complaint edited"}),
    AuditAction("complaints.complaint.step", {"zh_CN": "投诉处理步骤", "en": "Complaint workflow step"}),
    AuditAction("complaints.complaint.filed", {"zh_CN": "投诉处理单归档", "en": "Complaint form filed in the archive"}),
    AuditAction("complaints.form.printed", {"zh_CN": "打印投诉处理单", "en": "Complaint form printed"}),
    AuditAction("complaints.attachment.added", {"zh_CN": "上传投诉附件", "en": "Complaint attachment added"}),
    AuditAction("complaints.attachment.downloaded", {"zh_CN": "下载投诉附件",
                                                     "en": "Complaint attachment downloaded"}),
    AuditAction("complaints.policy.changed", {"zh_CN": "修改投诉处理时限", "en": "Complaint policy changed"}),
    AuditAction("complaints.stats.exported", {"zh_CN": "导出投诉统计", "en": "Complaint statistics exported"}),
    AuditAction("complaints.handover", {"zh_CN": "移交投诉", "en": "Complaints handed over"}),
)
