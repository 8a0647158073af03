"""Customer archives (客户档案): numbered documents per customer, encrypted attachments,
completeness per customer kind, view/borrow requests with approval, and the archive form PDF.

Other modules may use what ``EXPORTS`` lists (loaded lazily, so importing this package stays
light). Hooks this module contributes to: customers.panels, customers.timeline, customers.handover,
customers.rekey.
"""
from core.api import Manifest, lazy_exports

manifest = Manifest(
    name="archives", version="1.0.0",
    title={"zh_CN": "客户档案", "en": "Customer archives"},
    summary={"zh_CN": "客户档案编号登记、加密附件、完整性检查、查阅借阅审批、客户档案表 PDF",
             "en": "Numbered customer documents, encrypted attachments, completeness, "
                   "view/borrow approvals and the archive form PDF"},
    depends=("customers",), uses=("disclosure",),  # its information administrators also decide requests
)

# documents_of(customer_id) -> [Document]: no scope check, callers check the customer first.
# create_document(actor, customer, data) -> Document: register a document under the next DA number
#     (audited); data: doc_type (a DOC_TYPES key), title, doc_date, keeper_id (an active colleague
#     of the customer's department), storage_location, amount. No scope check: the caller checks
#     the customer is in the actor's remit first. Raises ArchiveError on bad input.
# add_attachment(actor, doc, filename, data) -> (attachment, path): content-check, encrypt and
#     store a file of that document (audited); the caller commits, and on a failed commit removes
#     ``path`` with remove_files([path]).
# destroy_attachments(actor, customer) -> [path]: delete all the customer's attachment rows
#     (audited); the caller removes the returned files with remove_files after its commit.
EXPORTS = {"documents_of": "services", "DOC_TYPES": "models", "create_document": "services",
           "add_attachment": "services", "remove_files": "services", "ArchiveError": "services",
           "destroy_attachments": "services", "documents_past": "services", "delete_document": "services",
           "AccessRequest": "models"}


__getattr__ = lazy_exports(__name__, EXPORTS)


def setup(reg):
    from . import hooks, menus, models, permissions, services, views, work
    reg.check_tables(*models.ALL)
    reg.blueprint(views.bp)
    reg.permissions(*permissions.ALL)
    reg.audit_actions(*permissions.AUDIT_ACTIONS)
    reg.menu(*menus.ALL)
    reg.migrations()
    reg.record_rule(models.Document, services.document_rule)
    reg.hook("customers.panels", hooks.panels)
    reg.hook("customers.timeline", hooks.timeline)
    reg.hook("customers.handover", hooks.handover)
    reg.hook("core.work_items", work.work_items)
    reg.hook("customers.rekey", hooks.rekey)
    from . import demo
    reg.hook("core.demo", demo.demo)
