"""客户拜访 — customer visits and calls (跟进记录), the reference module of the README.

A salesperson logs a visit or call to a customer in their remit (date, way of contact, purpose,
notes kept encrypted under the customer's data key, next step and next-contact date); the
customer page shows the visits on its timeline and in a panel; the 待联系 list shows the next
contacts due. It uses core only through ``core.api`` and the customer register only through
what ``modules.customers`` exports and the hooks it offers.
"""
from core.api import Manifest, lazy_exports

manifest = Manifest(
    name="visits", version="1.0.0",
    title={"zh_CN": "客户拜访", "en": "Customer visits"},
    summary={"zh_CN": "记录对客户的拜访和电话（跟进记录），下次联系提醒，拜访记录表 PDF",
             "en": "Visits and calls to customers (follow-ups), next-contact reminders, visit report PDF"},
    depends=("customers",), uses=("lifecycle",),
)

# What other modules may use:
#   last_contact(customer_id) -> date | None     the date of the customer's latest visit or call
#   CHANNELS -> {"onsite": {"zh_CN": "上门拜访", "en": ...}, ...}   the ways of contact
EXPORTS = {"last_contact": "services", "CHANNELS": "models"}


__getattr__ = lazy_exports(__name__, EXPORTS)


def setup(reg):
    from . import cli, data_lifecycle, hooks, menus, models, permissions, services, views, work
    reg.check_tables(*models.ALL)
    reg.blueprint(views.bp)
    reg.permissions(*permissions.ALL)
    reg.audit_actions(*permissions.AUDIT_ACTIONS)
    reg.menu(*menus.ALL)
    reg.migrations()
    reg.record_rule(models.Visit, services.visit_rule)
    reg.cli(cli.group)
    reg.hook("customers.timeline", hooks.timeline)
    reg.hook("customers.panels", hooks.panels)
    reg.hook("customers.handover", hooks.handover)
    reg.hook("lifecycle.destroy", data_lifecycle.destroy)
    reg.hook("lifecycle.subject_data", data_lifecycle.subject_data)
    reg.hook("lifecycle.review", data_lifecycle.review)
    reg.hook("core.demo", hooks.demo)
    reg.hook("core.work_items", work.work_items)
