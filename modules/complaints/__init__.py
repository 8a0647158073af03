"""客户投诉 — customer complaints: intake, handling workflow with deadlines by severity and grade,
resolution and return visit, the 投诉处理单 PDF, statistics and the overdue list.

Other modules may use what ``EXPORTS`` lists (loaded lazily, so importing this package stays
light). Hooks this module offers: ``complaints.open_counts`` (it contributes the answer itself;
grading asks it). Hooks it contributes to: customers.panels, customers.timeline,
customers.handover, customers.rekey. Optional modules it uses when present: grading (shorter deadlines for 重要
customers) and archives (closing files a 投诉 document with the PDF).
"""
from core.api import Manifest, lazy_exports

manifest = Manifest(
    name="complaints", version="1.0.0",
    title={"zh_CN": "客户投诉", "en": "Customer complaints"},
    summary={"zh_CN": "投诉登记、受理指派、按严重程度和客户等级的处理时限、处理结果与回访满意度、"
                      "投诉处理单 PDF、统计",
             "en": "Complaint intake, assignment, deadlines by severity and grade, resolution, "
                   "satisfaction, the complaint form PDF and statistics"},
    depends=("customers",), uses=("grading", "archives", "lifecycle"),
)

# What other modules may use:
#   open_counts(customer_ids) -> {customer_id: number of open complaints}   (no scope check)
#   STATUSES, SEVERITIES, CHANNELS -> {key: {"zh_CN": ..., "en": ...}}
EXPORTS = {"open_counts": "hooks", "STATUSES": "models", "SEVERITIES": "models", "CHANNELS": "models"}


__getattr__ = lazy_exports(__name__, EXPORTS)


def setup(reg):
    from core.api import HookSpec

    from . import cli, data_lifecycle, hooks, menus, models, permissions, services, views
    reg.check_tables(*models.ALL)
    reg.blueprint(views.bp)
    reg.permissions(*permissions.ALL)
    reg.audit_actions(*permissions.AUDIT_ACTIONS)
    reg.menu(*menus.ALL)
    reg.migrations()
    reg.record_rule(models.Complaint, services.complaint_rule)
    reg.offers_hook(HookSpec(
        "complaints.open_counts", "open_counts(customer_ids) -> {customer_id: int}",
        "How many complaints of each customer are still open (not 已关闭); grading escalates a "
        "customer with that many. Customers without open complaints may be left out."))
    reg.hook("complaints.open_counts", hooks.open_counts)
    reg.hook("customers.panels", hooks.panels)
    reg.hook("customers.timeline", hooks.timeline)
    reg.hook("customers.handover", hooks.handover)
    reg.hook("customers.rekey", hooks.rekey)
    reg.hook("lifecycle.destroy", data_lifecycle.destroy)
    reg.hook("lifecycle.subject_data", data_lifecycle.subject_data)
    reg.hook("lifecycle.review", data_lifecycle.review)
    reg.cli(cli.group)
