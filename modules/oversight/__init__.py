"""安全监督 — oversight for the security officer: the customer-information policy published in
versions and acknowledged by every user before any other page (hook ``core.gates``), training
sessions and attendance, confidentiality reviews of those who may reveal 高度敏感 data, users
overdue with either (who lose reveal rights when OVERSIGHT_WITHHOLD_REVEAL is set, through the
hook ``core.withheld_permissions``), the security self-check page (core's checks and every
installed module's ``core.selfcheck`` findings, the same as `kehu selfcheck`), and anomaly alerts
read from the audit trail as it grows (hook ``core.audit_appended``, and `kehu alerts run` from
cron) that the security officer acknowledges or turns into an incident (``uses`` incidents).

The security role works company-wide (``company_roles``); the policy applies to the users of
every department that enabled the module."""
from core.api import Manifest, lazy_exports

manifest = Manifest(
    name="oversight", version="1.0.0",
    title={"zh_CN": "安全监督", "en": "Security oversight"},
    summary={"zh_CN": "制度确认与培训记录、保密审查、安全自查、审计日志异常告警",
             "en": "Policy acknowledgement and training, confidentiality reviews, the security self-check, "
                   "anomaly alerts from the audit trail"},
    depends=("customers",), uses=("incidents",),
    company_roles=("security",),
)

# overdue_users() -> [Standing]: users whose acknowledgement or training is overdue.
EXPORTS = {"overdue_users": "services"}

__getattr__ = lazy_exports(__name__, EXPORTS)


def setup(reg):
    from . import alerts, cli, models, permissions, services, views
    reg.check_tables(*models.ALL)
    reg.blueprint(views.bp)
    reg.permissions(*permissions.ALL)
    reg.audit_actions(*permissions.AUDIT_ACTIONS)
    reg.menu(*permissions.MENUS)
    reg.migrations()
    reg.cli(cli.alerts_run, under="alerts")
    reg.hook("core.gates", services.gate)
    reg.hook("core.withheld_permissions", services.withheld_permissions)
    reg.hook("core.selfcheck", services.selfcheck)
    reg.hook("core.audit_appended", alerts.on_appended)
    reg.hook("core.work_items", services.work_items)
