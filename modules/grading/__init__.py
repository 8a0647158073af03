"""客户分级 — customer grading: 重要 (important) or 一般 (ordinary) by the department's rules.

A department head sets the thresholds; grades are computed for all customers of the department
on demand (web page or ``kehu grading recompute``), kept with their history, and may be overridden
by a head with a reason. Other modules read a grade through :func:`grade_of` (exported below,
loaded lazily so importing this package stays light)."""
from core.api import Manifest, lazy_exports

manifest = Manifest(
    name="grading", version="1.0.0",
    title={"zh_CN": "客户分级", "en": "Customer grading"},
    summary={"zh_CN": "按部门规则将客户分为重要或一般，支持负责人人工调整（需说明理由）并保留历史",
             "en": "Important/ordinary grades by department rules, overrides with a reason, history"},
    depends=("customers",), uses=("lifecycle",),
)
# Grading calls the hook complaints.open_counts but neither imports complaints nor contributes
# to its hooks, so it does not list complaints in ``uses``: complaints uses grading (for 重要
# customers' deadlines), and a ``uses`` in both directions would be a load-order cycle.

# What other modules may use:
#   grade_of(customer_id) -> "important" | "ordinary" | None
#       the customer's effective grade (an override wins over the rules); None when the customer
#       has not been graded yet or its department does not use grading
#   grades_of(customer_ids) -> {customer_id: "important" | "ordinary"}   the same for many
#   GRADES -> {"important": {"zh_CN": "重要", "en": ...}, "ordinary": {...}}
# Hooks this module calls (when a module contributes them for the department):
#   complaints.open_counts(customer_ids) -> {customer_id: number of open complaints}
EXPORTS = {"grade_of": "services", "grades_of": "services", "GRADES": "rules"}


__getattr__ = lazy_exports(__name__, EXPORTS)


def setup(reg):
    from core.api import Purpose

    from . import cli, data_lifecycle, hooks, menus, models, permissions, views
    reg.check_tables(*models.ALL)
    reg.blueprint(views.bp)
    reg.permissions(*permissions.ALL)
    reg.audit_actions(*permissions.AUDIT_ACTIONS)
    reg.menu(*menus.ALL)
    reg.migrations()
    reg.purposes(Purpose("analysis", {"zh_CN": "客户分析与分级", "en": "Customer analysis and grading"}))
    reg.cli(cli.group)
    reg.hook("customers.panels", hooks.customer_panels)
    reg.hook("customers.timeline", hooks.customer_timeline)
    reg.hook("customers.list_columns", hooks.list_columns)
    reg.hook("customers.list_filters", hooks.list_filters)
    reg.hook("customers.changed", hooks.customer_changed)
    reg.hook("customers.form_facts", hooks.form_facts)
    reg.hook("core.demo", hooks.demo_grades)
    reg.hook("lifecycle.destroy", data_lifecycle.destroy)
    reg.hook("lifecycle.subject_data", data_lifecycle.subject_data)
    reg.hook("lifecycle.review", data_lifecycle.review)
