"""Permissions of the customer archives. Grants are data the administrator edits; these are the
roles that receive them when the module is installed."""
from core.api import AuditAction, Permission

STAFF = ("head", "sales", "service")

VIEW = "archives.view"
MANAGE = "archives.manage"
PRINT = "archives.print"
REQUEST = "archives.request"
APPROVE = "archives.approve"

ALL = (
    Permission(VIEW, {"zh_CN": "查看客户档案", "en": "View customer archives"}, STAFF),
    Permission(MANAGE, {"zh_CN": "登记和编辑档案文件、附件", "en": "Add and edit archive documents and attachments"},
               STAFF),
    Permission(PRINT, {"zh_CN": "打印客户档案表", "en": "Print the archive form"}, STAFF),
    Permission(REQUEST, {"zh_CN": "申请查阅或借阅档案", "en": "Request to view or borrow an archive"}, STAFF),
    Permission(APPROVE, {"zh_CN": "审批本部门档案的查阅借阅申请",
                         "en": "Approve view/borrow requests for the department's archives"}, ("head",)),
)

# The audit actions this module writes, as the audit trail page shows them.
AUDIT_ACTIONS = (
    AuditAction("archives.archive.accessed", {"zh_CN": "查阅客户档案", "en": "Archive accessed"}),
    AuditAction("archives.attachment.added", {"zh_CN": "上传附件", "en": "Attachment added"}),
    AuditAction("archives.attachment.deleted", {"zh_CN": "删除附件", "en": "Attachment deleted"}),
    AuditAction("archives.attachment.downloaded", {"zh_CN": "下载附件", "en": "Attachment downloaded"}),
    AuditAction("archives.document.created", {"zh_CN": "登记档案文件", "en": "Document registered"}),
    AuditAction("archives.document.deleted", {"zh_CN": "删除档案文件", "en": "Document deleted"}),
    AuditAction("archives.document.updated", {"zh_CN": "修改档案文件", "en": "Document updated"}),
    AuditAction("archives.keeper.handed_over", {"zh_CN": "移交档案保管", "en": "Archive keeping handed over"}),
    AuditAction("archives.request.approved", {"zh_CN": "批准查阅借阅申请", "en": "Request approved"}),
    AuditAction("archives.request.created", {"zh_CN": "申请查阅借阅", "en": "Request made"}),
    AuditAction("archives.request.expired", {"zh_CN": "查阅借阅到期", "en": "Request expired"}),
    AuditAction("archives.request.refused", {"zh_CN": "拒绝查阅借阅申请", "en": "Request refused"}),
    AuditAction("archives.request.returned", {"zh_CN": "归还档案原件", "en": "Originals returned"}),
    AuditAction("archives.request.withdrawn", {"zh_CN": "撤回查阅借阅申请", "en": "Request withdrawn"}),
    AuditAction("archives.form.printed", {"zh_CN": "打印客户档案表", "en": "Archive form printed"}),
)
