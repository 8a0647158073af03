"""客户信息反馈 — customer feedback: versioned form templates per customer type, forms filled by
staff or by the customer through a one-time link (/f/<token>, the module's public blueprint),
blank and filled PDFs, follow-up plans (客户跟踪计划) and summaries per template and period.

Other modules may use what ``EXPORTS`` lists (loaded lazily). Hooks it contributes to:
customers.timeline, customers.panels, customers.handover, customers.rekey, core.work_items. Optional module it
uses when present: grading (templates for 重要/一般 customers).
"""
from core.api import Manifest, lazy_exports

manifest = Manifest(
    name="feedback", version="1.0.0",
    title={"zh_CN": "客户信息反馈", "en": "Customer feedback"},
    summary={"zh_CN": "按客户类型设计的反馈表（有版本）、员工填写与客户自填一次性链接、PDF、客户跟踪计划、汇总",
             "en": "Versioned feedback templates per customer type, staff and customer-filled forms "
                   "(one-time links), PDFs, follow-up plans and summaries"},
    depends=("customers",), uses=("grading", "lifecycle"),
)

# What other modules may use:
#   response_counts(customer_ids) -> {customer_id: number of filled feedback forms}  (no scope check)
#   FIELD_KINDS -> {kind: {"zh_CN": ..., "en": ...}}
EXPORTS = {"response_counts": "hooks", "FIELD_KINDS": "models"}


__getattr__ = lazy_exports(__name__, EXPORTS)


def setup(reg):
    from . import data_lifecycle, hooks, menus, models, permissions, services, views
    reg.check_tables(*models.ALL)
    reg.blueprint(views.bp)
    reg.public_links(views.public_bp)
    reg.permissions(*permissions.ALL)
    reg.audit_actions(*permissions.AUDIT_ACTIONS)
    reg.menu(*menus.ALL)
    reg.migrations()
    reg.record_rule(models.Template, services.template_rule)
    reg.record_rule(models.Response, services.response_rule)
    reg.record_rule(models.Action, services.action_rule)
    reg.hook("customers.timeline", hooks.timeline)
    reg.hook("customers.panels", hooks.panels)
    reg.hook("customers.handover", hooks.handover)
    reg.hook("customers.rekey", hooks.rekey)
    reg.hook("core.work_items", hooks.work_items)
    reg.hook("lifecycle.destroy", data_lifecycle.destroy)
    reg.hook("lifecycle.subject_data", data_lifecycle.subject_data)
