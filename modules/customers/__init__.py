"""The customer register (客户). Always installed; every business module builds on it.

Other modules use only what this package exports below (loaded lazily so importing the
package stays light): the Customer model for foreign keys, scoped lookups, transaction sums
and the masked display of a customer's fields;
customers_matching(kind, value) finds customers by a normalised phone or ID number through the
blind indexes (company-wide, nothing decrypted)."""
from core.api import Manifest, lazy_exports

manifest = Manifest(
    name="customers", version="1.3.0",
    title={"zh_CN": "客户登记", "en": "Customer register"},
    summary={"zh_CN": "个人与企业客户、联系人、同意记录、交易与服务记录、移交、导入导出",
             "en": "Individual and organisation customers, contacts, consent, transactions, handover, import/export"},
    depends=(), auto_install=True, required=True,
)

# What other modules may use (the hooks this module offers are HOOKS in hooks.py); FIELDS is
# {field name: Field(name, level, label, kinds, ...)} of the customer's personal fields:
EXPORTS = {
    "Customer": "models", "Transaction": "models", "TimelineEvent": "api", "get_customer": "api",
    "scoped_customers": "api", "transaction_totals": "api", "masked_fields": "api",
    "CUSTOMER_KINDS": "fields", "STATUSES": "fields", "Panel": "api", "ListColumn": "api",
    "ListFilter": "api", "ListRow": "services", "customers_matching": "api", "FIELDS": "fields",
    # consent.allows(customer, purpose), consent.allowed_clause(purpose): a module asks before it
    # processes a customer for a purpose it declared with reg.purposes(Purpose(...))
    "consent": "api", "PURPOSES": "fields",
    # export_customers(actor, fmt, reason, request=N): the one export service (masks L2/L3 unless
    # an approved disclosure request is given)
    "export_customers": "io", "ExportError": "io", "ExportGrant": "api",
    # create_customer / update_customer(actor, ...) raise InvalidData (field -> message) when a
    # field lacks the consent covering its purpose: the same rule as the register's own forms
    "create_customer": "services", "update_customer": "services", "InvalidData": "services",
}


__getattr__ = lazy_exports(__name__, EXPORTS)


def setup(reg):
    from core.api import Purpose

    from . import api, audit_targets, cli, hook_specs, io_views, models, permissions, services, views, work  # noqa: F401 - io_views adds routes to views.bp
    from .fields import PURPOSES
    reg.check_tables(*models.ALL)
    reg.blueprint(views.bp)
    reg.permissions(*permissions.ALL)
    reg.audit_actions(*permissions.AUDIT_ACTIONS)
    reg.offers_hook(*hook_specs.ALL)
    reg.menu(*permissions.MENUS)
    reg.migrations()
    reg.record_rule(models.Customer, api.customer_rule)
    reg.purposes(*[Purpose(key, PURPOSES[key]) for key in ("service", "contract", "marketing")])
    reg.cli(cli.import_command, under="import")
    reg.cli(cli.export_command, under="export")
    reg.cli(cli.group)
    reg.hook("core.demo", cli.demo_data)
    reg.hook("core.reindex", services.reindex)
    reg.hook("core.reencrypt", services.reencrypt_under_suite)
    reg.hook("core.audit_targets", audit_targets.audit_targets)
    reg.hook("core.work_items", work.work_items)
    from . import form_facts
    reg.hook("customers.form_facts", form_facts.consent_facts)
