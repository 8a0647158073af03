"""Permissions of the grading module (granted to these roles at install; the administrator edits
the grants afterwards)."""
from core.modules import Permission

VIEW = Permission("grading.view", {"zh_CN": "查看客户分级", "en": "View customer grades"},
                  ("head", "sales", "service"))
CONFIGURE = Permission("grading.configure", {"zh_CN": "配置本部门分级规则", "en": "Configure the grading rules"},
                       ("head",))
RECOMPUTE = Permission("grading.recompute", {"zh_CN": "重新计算客户分级", "en": "Recompute customer grades"},
                       ("head",))
OVERRIDE = Permission("grading.override", {"zh_CN": "人工调整客户分级（需说明理由）",
                                           "en": "Override a customer's grade (with a reason)"}, ("head",))

ALL = (VIEW, CONFIGURE, RECOMPUTE, OVERRIDE)
