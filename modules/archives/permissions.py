"""Permissions of the customer archives. Grants are data the administrator edits; these are the
roles that receive them when the module is installed."""
from core.modules import Permission

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
