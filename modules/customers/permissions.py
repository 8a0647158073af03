"""Permissions and menu items of the customer register."""
from core.modules import MenuItem, Permission

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
    Permission("customers.export", {"zh_CN": "导出客户", "en": "Export customers"}, ("head",)),
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
