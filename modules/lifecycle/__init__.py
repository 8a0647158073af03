"""数据生命周期 — retention and destruction of customers' personal data, legal holds, destruction
certificates, and the hooks through which every module takes part in a destruction.

A security officer sets the retention period per customer status (defaults below); `kehu
retention run [--dry-run]` or the 数据生命周期 page lists the customers past their period and
destroys them: every module is told through the hook ``lifecycle.destroy`` (this module itself
contributes the customer register's and the archives' parts), the customer's data key is
destroyed (crypto-shredding, written ahead to the destruction ledger that `kehu restore`
replays), and a tombstone without personal data (number, date, policy, who) stays. A legal hold
stops the destruction of a customer with a visible reason. Each run has a destruction certificate
PDF."""
from core.api import Manifest, lazy_exports

manifest = Manifest(
    name="lifecycle", version="1.0.0",
    title={"zh_CN": "数据生命周期", "en": "Data lifecycle"},
    summary={"zh_CN": "个人信息存储期限、到期销毁（不可恢复）与销毁证明、法律保全",
             "en": "Retention periods, irrecoverable destruction with certificates, legal holds"},
    depends=("customers",), uses=("archives",),
)

# What other modules may use:
#   is_destroyed(customer_id) -> bool   the customer was destroyed (a tombstone exists)
#   Section(title, rows)                 what a module's lifecycle.subject_data returns
EXPORTS = {"is_destroyed": "services", "Section": "requests"}

__getattr__ = lazy_exports(__name__, EXPORTS)


def setup(reg):
    from . import cli, hooks, models, permissions, requests, views
    reg.check_tables(*models.ALL)
    reg.blueprint(views.bp)
    reg.permissions(*permissions.ALL)
    reg.audit_actions(*permissions.AUDIT_ACTIONS)
    reg.offers_hook(*hooks.SPECS)
    reg.menu(*permissions.MENUS)
    reg.migrations()
    reg.cli(cli.retention_run, under="retention")
    reg.cli(cli.review_report, under="review")
    reg.hook("lifecycle.destroy", hooks.destroy_customer_part)
    reg.hook("lifecycle.destroy", hooks.destroy_archives_part)
    reg.hook("lifecycle.subject_data", hooks.subject_data_customers)
    reg.hook("lifecycle.subject_data", hooks.subject_data_archives)
    reg.hook("lifecycle.review", hooks.review_archives)
    reg.hook("core.destruction_replayed", hooks.replay)
    reg.hook("core.work_items", hooks.work_items)
    reg.hook("core.selfcheck", requests.selfcheck)
