"""对外提供与明文导出 — disclosures to third parties and clear-text exports, by approved request.

An export that carries any 敏感 (L2) or 高度敏感 (L3) field unmasked, and any disclosure of
customers' data to a third party, starts as a request (recipient, purpose, legal basis, fields,
customers, retention at the recipient). A second person approves it: the department's information
administrator (信息管理员, a flag its head grants) or the security role, never the requester. The
approved request produces its file once, through the customer register's one export service, with
a first line naming the request; the audit trail links request, approval and file (its SHA-256).

The register of recipients and processors (第三方/受托方) keeps each one's contact, the data
categories and purposes shared and the signed confidentiality and data-processing agreement (an
encrypted attachment with its expiry): a disclosure may only name a recipient whose agreement is in
force; agreements expiring soon are listed on the home page's work queue.

Written against the public API only, as a company's own module would be. Other modules may use
what ``EXPORTS`` lists (loaded lazily)."""
from core.api import Manifest, lazy_exports

manifest = Manifest(
    name="disclosure", version="1.0.0",
    title={"zh_CN": "对外提供与明文导出", "en": "Disclosures and clear-text exports"},
    summary={"zh_CN": "明文导出与对外提供须经第二人审批；第三方与受托方登记及协议；信息管理员",
             "en": "Clear-text exports and disclosures by approved request; register of recipients and "
                   "processors with their agreements; department information administrators"},
    depends=("customers",),
    company_roles=("security",),
)

# is_info_admin(user) -> bool: the user is an information administrator of their department.
EXPORTS = {"is_info_admin": "services"}


__getattr__ = lazy_exports(__name__, EXPORTS)


def setup(reg):
    from core.api import Purpose

    from . import menus, models, permissions, services, views
    reg.check_tables(*models.ALL)
    reg.blueprint(views.bp)
    reg.permissions(*permissions.ALL)
    reg.audit_actions(*permissions.AUDIT_ACTIONS)
    reg.menu(*menus.ALL)
    reg.migrations()
    reg.purposes(Purpose("disclosure", {"zh_CN": "向第三方提供", "en": "Disclosure to third parties"}))
    reg.record_rule(models.Request, services.request_rule)
    reg.hook("customers.export_grant", services.export_grant)
    reg.hook("core.work_items", services.work_items)
    reg.hook("core.audit_targets", services.audit_targets)
    reg.hook("customers.privacy_notice", services.notice_versions)
