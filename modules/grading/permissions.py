"""Permissions of the grading module (granted to these roles at install; the administrator edits
the grants afterwards)."""
from core.api import AuditAction, Permission

VIEW = Permission("grading.view", {"zh_CN": "查看客户分级", "en": "View customer grades"},
                  ("head", "sales", "service"))
CONFIGURE = Permission("grading.configure", {"zh_CN": "配置本部门分级规则", "en": "Configure the grading rules"},
                       ("head",))
RECOMPUTE = Permission("grading.recompute", {"zh_CN": "重新计算客户分级", "en": "Recompute customer grades"},
                       ("head",))
OVERRIDE = Permission("grading.override", {"zh_CN": "人工调整客户分级（需说明理由）",
                                           "en": "Override a customer's grade (with a reason)"}, ("head",))

ALL = (VIEW, CONFIGURE, RECOMPUTE, OVERRIDE)

# The audit actions this module writes, as the audit trail page shows them.
AUDIT_ACTIONS = (
    AuditAction("grading.grade.overridden", {"zh_CN": "人工调整分级", "en": "Grade overridden"}),
    AuditAction("grading.grade.override_removed", {"zh_CN": "取消人工调整", "en": "Override removed"}),
    AuditAction("grading.grades.recomputed", {"zh_CN": "重新计算分级", "en": "Grades recomputed"}),
    AuditAction("grading.grade.regraded", {"zh_CN": "客户分级随资料变化", "en": "Grade changed with the customer's data"}),
    AuditAction("grading.grade.removed", {"zh_CN": "删除分级（未同意用于分析）", "en": "Grade removed (no analysis consent)"}),
    AuditAction("grading.rules.changed", {"zh_CN": "修改分级规则", "en": "Grading rules changed"}),
)
