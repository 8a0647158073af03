"""Permissions of the disclosure module and the audit actions it writes."""
from core.api import AuditAction, Permission

VIEW = "disclosure.view"
REQUEST = "disclosure.request"
RECIPIENTS = "disclosure.recipients"
ADMINS = "disclosure.info_admins"
NOTICE = "disclosure.notice"

ALL = (
    Permission(VIEW, {"zh_CN": "查看对外提供与明文导出申请（本人的；信息管理员与安全员可审批）",
                      "en": "View disclosure and clear-text export requests (own; information "
                            "administrators and security decide)"},
               ("head", "sales", "service", "security")),
    Permission(REQUEST, {"zh_CN": "提出明文导出或对外提供申请", "en": "Request a clear-text export or a disclosure"},
               ("head", "sales", "service")),
    Permission(RECIPIENTS, {"zh_CN": "管理第三方与受托方登记及其协议", "en": "Manage the register of recipients "
                                                                  "and processors and their agreements"},
               ("head", "security")),
    Permission(ADMINS, {"zh_CN": "指定本部门信息管理员", "en": "Appoint the department's information administrators"},
               ("head",)),
    Permission(NOTICE, {"zh_CN": "发布个人信息处理告知书新版本", "en": "Publish a new version of the privacy notice"},
               ("security",)),
)


def _a(name, zh, en):
    return AuditAction(name, {"zh_CN": zh, "en": en})


AUDIT_ACTIONS = (
    _a("disclosure.request.created", "提出明文导出/对外提供申请", "Disclosure request made"),
    _a("disclosure.request.approved", "批准明文导出/对外提供申请", "Disclosure request approved"),
    _a("disclosure.request.refused", "拒绝明文导出/对外提供申请", "Disclosure request refused"),
    _a("disclosure.request.denied", "明文导出/对外提供被拒绝执行", "Disclosure step refused"),
    _a("disclosure.request.produced", "按批准的申请生成文件", "File produced for an approved request"),
    _a("disclosure.recipient.created", "登记第三方/受托方", "Recipient registered"),
    _a("disclosure.recipient.updated", "修改第三方/受托方登记", "Recipient updated"),
    _a("disclosure.agreement.uploaded", "上传保密与数据处理协议", "Agreement uploaded"),
    _a("disclosure.agreement.downloaded", "下载保密与数据处理协议", "Agreement downloaded"),
    _a("disclosure.info_admin.granted", "指定信息管理员", "Information administrator appointed"),
    _a("disclosure.info_admin.revoked", "取消信息管理员", "Information administrator removed"),
    _a("disclosure.notice.published", "发布告知书新版本", "Privacy notice version published"),
    _a("disclosure.notice.printed", "打印告知书", "Privacy notice printed"),
)
