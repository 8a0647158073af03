"""Permissions of the incident module and the audit actions it writes. Grants are data the
administrator edits; these are the roles that receive them when the module is installed."""
from core.api import AuditAction, Permission

EVERYONE = ("admin", "head", "sales", "service", "security")

VIEW = "incidents.view"
REPORT = "incidents.report"
HANDLE = "incidents.handle"
PRINT = "incidents.print"

ALL = (
    Permission(VIEW, {"zh_CN": "查看信息安全事件（本人报告的、本部门的或全部，按角色）",
                      "en": "View security incidents (own, the department's or all, by role)"}, EVERYONE),
    Permission(REPORT, {"zh_CN": "报告信息安全事件", "en": "Report a security incident"}, EVERYONE),
    Permission(HANDLE, {"zh_CN": "处置信息安全事件（研判、控制、调查、通知、关闭）",
                        "en": "Handle security incidents (triage, contain, investigate, notify, close)"},
               ("security",)),
    Permission(PRINT, {"zh_CN": "打印事件告知书和事件报告", "en": "Print notice letters and incident reports"},
               ("security",)),
)


def _a(name, zh, en):
    return AuditAction(name, {"zh_CN": zh, "en": en})


AUDIT_ACTIONS = (
    _a("incidents.incident.reported", "报告信息安全事件", "Incident reported"),
    _a("incidents.incident.triaged", "研判信息安全事件", "Incident triaged"),
    _a("incidents.incident.updated", "修改信息安全事件", "Incident updated"),
    _a("incidents.incident.advanced", "事件处置进入下一阶段", "Incident moved to the next stage"),
    _a("incidents.incident.refused", "事件处置步骤被拒绝", "Incident step refused"),
    _a("incidents.incident.closed", "关闭信息安全事件", "Incident closed"),
    _a("incidents.comment.added", "事件补充说明", "Incident comment added"),
    _a("incidents.affected.added", "添加受影响客户", "Affected customers added"),
    _a("incidents.affected.removed", "移除受影响客户", "Affected customer removed"),
    _a("incidents.affected.updated", "更新客户通知状态", "Customer notification updated"),
    _a("incidents.regulator.reported", "记录向监管部门报告", "Report to the authority recorded"),
    _a("incidents.evidence.searched", "检索审计日志证据", "Audit evidence searched"),
    _a("incidents.evidence.linked", "关联审计日志证据", "Audit evidence linked"),
    _a("incidents.notice.printed", "打印事件告知书", "Notice letter printed"),
    _a("incidents.report.printed", "打印事件报告", "Incident report printed"),
)
