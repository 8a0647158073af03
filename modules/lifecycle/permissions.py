"""Permissions, audit actions and menu of the lifecycle module."""
from core.api import AuditAction, MenuItem, Permission

VIEW = Permission("lifecycle.view", {"zh_CN": "查看到期销毁清单与销毁证明", "en": "View what is due and the certificates"},
                  ("security", "head"))
CONFIGURE = Permission("lifecycle.configure", {"zh_CN": "设置存储期限", "en": "Set the retention periods"},
                       ("security",))
DESTROY = Permission("lifecycle.destroy", {"zh_CN": "执行到期销毁", "en": "Run the destruction"}, ("security",))
HOLD = Permission("lifecycle.hold", {"zh_CN": "设置或解除法律保全", "en": "Set or release a legal hold"},
                  ("security",))

REQUESTS = Permission("lifecycle.requests", {"zh_CN": "登记和处理个人信息主体请求",
                                             "en": "Record and handle data-subject requests"},
                      ("head", "sales", "service", "security"))
APPROVE = Permission("lifecycle.approve", {"zh_CN": "批准删除请求（销毁客户个人信息）",
                                           "en": "Approve a deletion request (destroys the customer)"},
                     ("head", "security"))

ALL = (VIEW, CONFIGURE, DESTROY, HOLD, REQUESTS, APPROVE)

AUDIT_ACTIONS = (
    AuditAction("lifecycle.policy.changed", {"zh_CN": "修改存储期限", "en": "Retention period changed"}),
    AuditAction("lifecycle.hold.set", {"zh_CN": "设置法律保全", "en": "Legal hold set"}),
    AuditAction("lifecycle.hold.released", {"zh_CN": "解除法律保全", "en": "Legal hold released"}),
    AuditAction("lifecycle.customer.destroyed", {"zh_CN": "销毁客户个人信息", "en": "Customer destroyed"}),
    AuditAction("lifecycle.customer.held", {"zh_CN": "因法律保全未销毁", "en": "Destruction blocked by a hold"}),
    AuditAction("lifecycle.run.completed", {"zh_CN": "执行到期销毁", "en": "Retention run"}),
    AuditAction("lifecycle.certificate.printed", {"zh_CN": "打印销毁证明", "en": "Destruction certificate printed"}),
    AuditAction("lifecycle.request.created", {"zh_CN": "登记个人信息主体请求", "en": "Data-subject request recorded"}),
    AuditAction("lifecycle.request.done", {"zh_CN": "办结个人信息主体请求", "en": "Data-subject request done"}),
    AuditAction("lifecycle.request.refused", {"zh_CN": "拒绝个人信息主体请求", "en": "Data-subject request refused"}),
    AuditAction("lifecycle.request.copy_printed", {"zh_CN": "打印个人信息副本", "en": "Copy of personal data printed"}),
    AuditAction("lifecycle.review.printed", {"zh_CN": "打印客户信息梳理报告", "en": "Weekly review printed"}),
    AuditAction("lifecycle.replayed", {"zh_CN": "恢复后重新执行销毁", "en": "Destruction replayed after a restore"}),
)

MENUS = (
    MenuItem("lifecycle.index", {"zh_CN": "数据生命周期", "en": "Data lifecycle"}, "lifecycle.index",
             "lifecycle.view", 80),
    MenuItem("lifecycle.review", {"zh_CN": "客户信息梳理", "en": "Weekly review"}, "lifecycle.review",
             "lifecycle.view", 82),
    MenuItem("lifecycle.requests", {"zh_CN": "个人信息主体请求", "en": "Data-subject requests"},
             "lifecycle.requests_index", "lifecycle.requests", 81),
)
