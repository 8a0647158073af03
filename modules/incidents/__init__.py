"""Information-security incidents (信息安全事件): report, triage, containment, investigation,
notification of affected customers with notice letters, the regulator-report clock and the
closing summary with its incident-report PDF (PIPL art. 57; GB/T 35273 ch. 10).

Who reaches it: any signed-in user of a department that enabled the module reports incidents
and follows their own reports; department heads see those of their department. The security
role has no department, so the manifest lists it in ``company_roles``: for security officers
the module works company-wide, whatever department enabled it; they see and handle every
ticket.

Other modules may use what ``EXPORTS`` lists (loaded lazily, so importing this package stays
light). It offers no hooks; it contributes its open tickets to the security self-check
(``core.selfcheck``).
"""
from core.api import Manifest, lazy_exports

manifest = Manifest(
    name="incidents", version="1.0.0",
    title={"zh_CN": "信息安全事件", "en": "Security incidents"},
    summary={"zh_CN": "事件报告、研判、控制、调查、通知受影响客户、监管报告时限、总结与事件报告 PDF",
             "en": "Incident reports, triage, containment, investigation, notification of affected "
                   "customers, the regulator clock, summary and report PDF"},
    depends=("customers",),
    company_roles=("security",),
)

# open_overdue_count() -> int: open tickets past their regulator-report deadline.
# report_from_alert(actor, title=, description=, entry_ids=) -> Incident: a ticket opened from an
#   anomaly alert (oversight), with the alert's audit entries linked as evidence.
EXPORTS = {"open_overdue_count": "services", "SEVERITIES": "models", "STATUSES": "models",
           "report_from_alert": "services"}


__getattr__ = lazy_exports(__name__, EXPORTS)


def setup(reg):
    from . import menus, models, permissions, services, views
    reg.check_tables(*models.ALL)
    reg.blueprint(views.bp)
    reg.permissions(*permissions.ALL)
    reg.audit_actions(*permissions.AUDIT_ACTIONS)
    reg.menu(*menus.ALL)
    reg.migrations()
    reg.record_rule(models.Incident, services.incident_rule)
    reg.hook("core.selfcheck", services.selfcheck)
