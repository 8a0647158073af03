"""Permissions and menu items of the customer register."""
from core.api import AuditAction, MenuItem, Permission

STAFF = ("head", "sales", "service")

ALL = (
    Permission("customers.view", {"zh_CN": "查看客户", "en": "View customers"}, STAFF),
    Permission("customers.create", {"zh_CN": "新建客户", "en": "Create customers"}, STAFF),
    Permission("customers.edit", {"zh_CN": "编辑客户", "en": "Edit customers"}, STAFF),
    Permission("customers.reveal_l2", {"zh_CN": "查看敏感信息（身份证号、银行账号）",
                                       "en": "Reveal L2 sensitive data (ID number, bank account)"}, ("head",)),
    Permission("customers.reveal_l3", {"zh_CN": "查看高度敏感信息（家庭住址、紧急联系人，需说明理由）",
                                       "en": "Reveal L3 highly sensitive data (with a reason)"}, ("head",)),
    Permission("customers.consent", {"zh_CN": "登记和撤回同意", "en": "Record and withdraw consent"}, STAFF),
    Permission("customers.share", {"zh_CN": "共享客户给同事", "en": "Share customers with colleagues"}, STAFF),
    Permission("customers.handover", {"zh_CN": "离职移交客户", "en": "Hand over a leaver's customers"}, ("head",)),
    Permission("customers.import", {"zh_CN": "导入客户", "en": "Import customers"}, ("head",)),
    Permission("customers.export", {"zh_CN": "导出客户", "en": "Export customers"}, ("head", "sales")),
    Permission("customers.marketing_export", {"zh_CN": "导出营销名单", "en": "Export marketing lists"},
               ("head",)),
)

MENUS = (
    MenuItem("customers.list", {"zh_CN": "客户", "en": "Customers"}, "customers.index", "customers.view", 10),
    MenuItem("customers.incomplete", {"zh_CN": "待完善客户", "en": "Incomplete records"},
             "customers.incomplete", "customers.view", 11),
    MenuItem("customers.handover", {"zh_CN": "离职移交", "en": "Handover"}, "customers.handover",
             "customers.handover", 60),
)

# The audit actions this module writes, as the audit trail page shows them.
AUDIT_ACTIONS = (
    AuditAction("customers.consent.recorded", {"zh_CN": "记录同意", "en": "Consent recorded"}),
    AuditAction("customers.consent.withdrawn", {"zh_CN": "撤回同意", "en": "Consent withdrawn"}),
    AuditAction("customers.contact.created", {"zh_CN": "新增联系人", "en": "Contact added"}),
    AuditAction("customers.contact.deleted", {"zh_CN": "删除联系人", "en": "Contact deleted"}),
    AuditAction("customers.contact.updated", {"zh_CN": "修改联系人", "en": "Contact updated"}),
    AuditAction("customers.customer.created", {"zh_CN": "新建客户", "en": "Customer created"}),
    AuditAction("customers.customer.duplicate_elsewhere", {"zh_CN": "查重命中权限外客户", "en": "Duplicate check matched a customer outside the remit"}),
    AuditAction("customers.customer.duplicate_confirmed", {"zh_CN": "确认非重复客户", "en": "Possible duplicate confirmed as new"}),
    AuditAction("customers.customer.reassigned", {"zh_CN": "批量更换负责人", "en": "Customer reassigned (bulk)"}),
    AuditAction("customers.customer.rekeyed", {"zh_CN": "更换客户数据密钥", "en": "Customer data key replaced"}),
    AuditAction("customers.customer.searched", {"zh_CN": "搜索客户", "en": "Customers searched"}),
    AuditAction("customers.customer.searched_sensitive", {"zh_CN": "按身份证号精确搜索", "en": "Exact search by ID number"}),
    AuditAction("customers.customer.sensitive_erased", {"zh_CN": "清除敏感信息（同意撤回）", "en": "Sensitive data erased (consent withdrawn)"}),
    AuditAction("customers.customer.shared", {"zh_CN": "共享客户", "en": "Customer shared"}),
    AuditAction("customers.customer.status_changed", {"zh_CN": "变更客户状态", "en": "Customer status changed"}),
    AuditAction("customers.customer.unshared", {"zh_CN": "取消共享", "en": "Sharing ended"}),
    AuditAction("customers.customer.updated", {"zh_CN": "修改客户", "en": "Customer updated"}),
    AuditAction("customers.customer.viewed", {"zh_CN": "查看客户", "en": "Customer viewed"}),
    AuditAction("customers.export.completed", {"zh_CN": "导出客户", "en": "Customers exported"}),
    AuditAction("customers.export.revealed", {"zh_CN": "导出含明文敏感信息", "en": "Export with sensitive fields in clear"}),
    AuditAction("customers.field.revealed", {"zh_CN": "查看明文", "en": "Field revealed"}),
    AuditAction("customers.handover.completed", {"zh_CN": "离职移交", "en": "Handover completed"}),
    AuditAction("customers.import.refused", {"zh_CN": "导入被拒绝", "en": "Import refused"}),
    AuditAction("customers.import.completed", {"zh_CN": "导入客户", "en": "Customers imported"}),
    AuditAction("customers.import.checked", {"zh_CN": "检查导入文件（试运行）", "en": "Import file checked (dry run)"}),
    AuditAction("customers.transaction.created", {"zh_CN": "记录交易或服务", "en": "Transaction recorded"}),
    AuditAction("customers.transaction.corrected", {"zh_CN": "更正交易记录", "en": "Transaction corrected"}),
    AuditAction("customers.transaction.voided", {"zh_CN": "作废交易记录", "en": "Transaction voided"}),
)
