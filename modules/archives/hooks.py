"""What the archives contribute to the customer register's hooks."""
from flask import url_for
from flask_babel import gettext as _

from core.api import can, pick
from modules.customers import Panel, TimelineEvent

from . import services
from .models import DOC_TYPES
from .permissions import MANAGE, PRINT, VIEW


def panels(customer, actor):
    """customers.panels: document count, completeness, link to the archive and the PDF button."""
    if actor is None or not actor.is_authenticated or not can(actor, VIEW):
        return []
    docs = services.documents_of(customer.id)
    missing = services.missing_types(customer, docs)
    context = {
        "count": len(docs),
        "missing": [pick(DOC_TYPES[t]) for t in missing],
        "url": url_for("archives.archive", customer_id=customer.id),
        "new_url": url_for("archives.new_document", customer_id=customer.id) if can(actor, MANAGE) else None,
        "pdf_url": url_for("archives.form_pdf", customer_id=customer.id) if can(actor, PRINT) else None,
    }
    return [Panel(title=_("Customer archive"), template="archives/panel.html", context=context,
                  module="archives")]


def timeline(customer, actor):
    """customers.timeline: one event per document added to the archive."""
    if actor is not None and not can(actor, VIEW):
        return []
    return [TimelineEvent(at=doc.created_at, module="archives",
                          title=_("Archive document %(number)s added (%(type)s)",
                                  number=doc.number, type=pick(DOC_TYPES[doc.doc_type])),
                          detail=doc.title, url=url_for("archives.document", doc_id=doc.id))
            for doc in services.documents_of(customer.id)]


def handover(from_user, to_user, actor):
    """customers.handover: the colleague becomes keeper of the leaver's documents."""
    return services.hand_over_keeper(getattr(from_user, "id", from_user), getattr(to_user, "id", to_user),
                                     actor)


def rekey(customer, old_key, new_key):
    """customers.rekey: attachment names and files follow the customer to its new data key."""
    return services.rekey_attachments(customer, old_key, new_key)
