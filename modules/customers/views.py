"""Pages of the customer register (blueprint "customers"): thin — parse the form, call a
service with the acting user, render. Every customer id goes through `api.get_customer`, so an
id outside the user's remit answers 404 like one that does not exist. Every change is a POST.

The handover page (`customers.handover`) and the import/export pages live in io_views.py."""
from __future__ import annotations

from urllib.parse import urlencode

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from core.api import (
    User,
    audit,
    can,
    db,
    deny,
    hooks,
    local_datetime,
    pick,
    require,
    safe_local_url,
    validation,
)

from . import api, consent_rules, quality, search, services
from .fields import (
    CHANNELS,
    CLASS_LABELS,
    CUSTOMER_KINDS,
    FIELDS,
    GENDERS,
    L2,
    L3,
    PURPOSES,
    SOURCES,
    STATUSES,
    is_masked,
    level_of,
    mask_value,
)
from .forms import (
    CONSENT_FIELDS,
    FORMS,
    KIND_FIELDS,
    MASKED_FIELDS,
    ConsentForm,
    ContactForm,
    ReasonForm,
    RevealForm,
    ShareForm,
    StatusForm,
    TransactionCorrectionForm,
    TransactionForm,
    TransactionVoidForm,
)
from .models import Consent, Customer, Share

bp = Blueprint("customers", __name__, url_prefix="/customers")

MAX_PAGE_SIZE = 100
MAX_SORTED_PAGE = 200  # sorting by a module's column pages with OFFSET: keep it bounded
MAX_QUERY = 100
DETAIL_TRANSACTIONS = 10
PHONE_FIELDS = ("phone", "phone2", "fax")
SENSITIVE_QUERY_KINDS = ("id_number",)  # exact search by an L2 value: counted and limited
OTHER_LABELS = {"source": _l("Source channel"), "tags": _l("Tags")}


def _actor():
    return current_user._get_current_object()


def _customer_or_404(customer_id):
    """The customer within the user's remit; otherwise 404 (core audits the refusal)."""
    return api.get_customer(customer_id, current_user)


def _hook(name, *args):
    """Results of a hook for the user's department: a module disabled there contributes nothing."""
    items = []
    for module, result in hooks.call(name, *args, department_id=current_user.department_id):
        for item in result or ():
            if hasattr(item, "module") and not getattr(item, "module", None):
                item.module = module
            items.append(item)
    return items


def _normalise(kind, q):
    """Canonical form of the search text as a phone, ID number or name, or None if it is not one."""
    cleaners = {"phone": validation.phone, "id_number": validation.id_number, "name": validation.clean_text}
    try:
        return cleaners[kind](q) or None
    except validation.ValidationError:
        return None


def _apply_errors(form, errors):
    """Put the services' errors next to their fields; the rest go to the top of the form."""
    general = []
    aliases = {"owner": "owner_id"}
    for key, message in errors.items():
        name = aliases.get(key, key)
        if name in form._fields:
            form[name].errors = [*list(form[name].errors or ()), message]
        else:
            general.append(message)
    return general


def _choice_label(labels, key):
    return pick(labels[key]) if key in labels else (key or "")


@bp.app_template_global("customers_phone")
def display_phone(value):
    """A stored E.164 number as people write it: "+8613800138000" -> "138 0013 8000",
    "+861088886666" -> "010-8888 6666" (core's validation.display_phone)."""
    return validation.display_phone(value, _("ext."))


@bp.app_template_global("customers_label")
def customers_label(group, key):
    """Label of a key of fields.py (statuses, kinds, sources, ...) in the user's language."""
    tables = {"status": STATUSES, "kind": CUSTOMER_KINDS, "source": SOURCES, "gender": GENDERS,
              "purpose": PURPOSES, "channel": CHANNELS, "class": CLASS_LABELS,
              "transaction_kind": services.TRANSACTION_KINDS,
              "transaction_channel": services.TRANSACTION_CHANNELS}
    return _choice_label(tables[group], key)


# --- list ----------------------------------------------------------------------------------------

STATUS_BADGES = {"prospect": "secondary", "active": "success", "lost": "dark"}  # Bootstrap's text-bg-*


@bp.app_template_global("customers_status_badge")
def status_badge(status):
    """Bootstrap's ``text-bg-*`` colour of a status badge (the list and the customer page)."""
    return STATUS_BADGES.get(status, "")


def _total(remit, shown, whole):
    """(count, capped) of the list: the rows shown when they are ``whole`` (every match is on this
    first page), else the capped count of the remit."""
    return (len(shown), False) if whole else services.count_capped(remit)


def _rows_html(rows, detail_prefix, columns, values):
    """The list's rows as HTML (Markup): the list's own cells and then the modules' ``columns``
    with their ``values`` ({column key: {customer id: value}}). Written here rather than in the
    template, where 50 rows of 20 autoescaped outputs each cost a tenth of the page. Whatever
    comes from a customer or a module goes through escape(); the rest is ours (ids, labels)."""
    select_, type_, owner_, score_, updated_ = (escape(text) for text in (
        _("Select"), _("Type"), _("Owner"), _("Completeness score"), _("Updated")))
    kinds = {key: escape(customers_label("kind", key)) for key in CUSTOMER_KINDS}
    statuses = {key: escape(customers_label("status", key)) for key in STATUSES}
    prefix = escape(detail_prefix)
    extra = [(escape(c.label), values[c.key]) for c in columns]
    html = []
    for row in rows:
        cid, number = int(row.id), escape(row.number)
        phone = f'<span class="masked">{escape(row.masked_phone)}</span>' if row.masked_phone else ""
        html.append(
            f'  <tr id="customer-{cid}">\n'
            f'    <td class="col-select"><input class="form-check-input row-select" type="checkbox" name="selected" value="{cid}"\n'
            f'        id="select-{cid}" aria-label="{select_} {number}"></td>\n'
            f'    <td class="col-number"><a href="{prefix}{cid}">{number}</a></td>\n'
            f'    <td class="col-name"><bdi>{escape(row.display_name or "")}</bdi></td>\n'
            f'    <td class="col-low" data-label="{type_}">{kinds.get(row.kind, "")}</td>\n'
            f'    <td class="col-status"><span class="badge text-bg-{status_badge(row.status)}">'
            f'{statuses.get(row.status, "")}</span></td>\n'
            f'    <td class="col-phone">{phone}</td>\n'
            f'    <td class="col-low" data-label="{owner_}"><bdi>{escape(row.owner)}</bdi></td>\n'
            f'    <td class="col-low" data-label="{score_}">{int(row.completeness)}%</td>\n'
            f'    <td class="col-low" data-label="{updated_}">{escape(local_datetime(row.updated_at))}</td>\n    '
            + "".join([f'<td class="col-low" data-label="{label}">{escape(found.get(cid, ""))}</td>'
                       for label, found in extra])
            + "\n  </tr>\n")
    return Markup("".join(html))  # noqa: S704 -- each customer and module value is escaped; ids and scores are ints


def _owner_choices(actor, staff):
    if actor.role == "head":
        return [(str(u.id), str(u)) for u in staff]
    return [("me", _("Mine")), ("shared", _("Shared with me"))]


def _department_choices(actor):
    """Departments the user's remit spans (heads: their own; kept for remits spanning several)."""
    if actor.role != "head" or actor.department_id is None:
        return []
    return [(str(actor.department.id), actor.department.name)]


PAGE_SIZES = (20, 50, 100)


def list_conditions(actor, args):
    """(conditions, owner choice, extra filters) of the list's filter fields in ``args`` (also
    used to export "the current filter")."""
    conditions = []
    status, kind, owner = args.get("status", ""), args.get("kind", ""), args.get("owner", "")
    if status in STATUSES:
        conditions.append(Customer.status == status)
    if kind in CUSTOMER_KINDS:
        conditions.append(Customer.kind == kind)
    if owner.isdigit():
        conditions.append(Customer.owner_id == int(owner))
    elif owner not in ("me", "shared"):
        owner = ""
    if owner == "me" and actor.role == "head":
        conditions.append(Customer.owner_id == actor.id)
    if owner == "shared" and actor.role == "head":
        conditions.append(Customer.id.in_(select(Share.customer_id).where(Share.user_id == actor.id)))
    department = args.get("department", "")
    if department.isdigit():
        conditions.append(Customer.department_id == int(department))
    extra_filters = _hook("customers.list_filters", actor)
    extra_applied = []
    for extra in extra_filters:
        value = args.get(extra.param, "")
        if value and value in {str(v) for v, _label in extra.choices}:
            extra_applied.append((extra, value))
    return conditions, owner, extra_filters, extra_applied


def list_remit(actor, conditions, owner, applied):
    """The customers of the list for the filter read by ``list_conditions`` (services.remit_of),
    with the modules' filters ``applied``."""
    remit = services.remit_of(actor, conditions, owner)
    for extra, value in applied:
        remit = remit.map(lambda stmt, extra=extra, value=value: extra.apply(stmt, value))
    return remit


def search_clauses(q):
    """(sure, candidates) of a search text: ``sure`` clauses match without decrypting (number,
    its tail, credit code, company name, exact blind indexes); ``candidates`` come from the
    truncated partial-search indexes and are confirmed row by row. A phone number or an ID
    number is not looked for in company names (that LIKE would scan the register).

    The indexed lookups are one ``id IN (… UNION …)``: each is an index search, and the remit's
    rows are then fetched by id. As an OR beside the remit's condition they made the database
    walk the whole remit (a department: half of the register) for every phone search."""
    from sqlalchemy import union

    from core.api import crypto

    from .fields import CONTACT_FIELDS
    from .models import Contact
    q = q.strip()
    lookups = [select(Customer.id).where(Customer.number == q.upper()),
               select(Customer.id).where(Customer.credit_code == q.upper())]
    tail = search.number_tail_clause(Customer, q)
    if tail is not None:
        lookups.append(select(Customer.id).where(tail))
    exact = {kind: _normalise(kind, q) for kind in ("name", "phone", "id_number")}
    for kind, columns, contact_column in (
            ("name", [Customer.name_bidx], Contact.name_bidx),
            ("phone", [Customer.phone_bidx, Customer.phone2_bidx], Contact.phone_bidx),
            ("id_number", [Customer.id_number_bidx], None)):
        value = exact[kind]
        if value:
            digests = crypto.blind_index_candidates(FIELDS[kind].search_domain, value)
            lookups += [select(Customer.id).where(col.in_(digests)) for col in columns]
            if contact_column is not None:
                lookups.append(select(Contact.customer_id).where(contact_column.in_(
                    crypto.blind_index_candidates(CONTACT_FIELDS[kind].search_domain, value))))
    sure = [Customer.id.in_(union(*lookups))]
    if not (exact["phone"] or exact["id_number"]) and not q.isdigit():
        sure.append(search.company_name_clause(Customer, q, db.session.get_bind().dialect.name))
    return sure, search.candidate_clauses(Customer, q)


def _sort_choice(args, columns):
    """(built-in sort key or "", module column or None, descending)."""
    key = args.get("sort", "")
    descending = args.get("dir") != "asc"
    if key in services.LIST_SORTS:
        return key, None, descending
    return "", next((c for c in columns if c.key == key and c.sort), None), descending


@bp.route("/")
@require("customers.view")
def index():
    actor = _actor()
    args = request.args
    size = args.get("size", type=int) or current_app.config["PAGE_SIZE"]
    size = min(max(size, 1), MAX_PAGE_SIZE)
    conditions, owner, extra_filters, applied = list_conditions(actor, args)
    remit = list_remit(actor, conditions, owner, applied)
    status, kind, department = args.get("status", ""), args.get("kind", ""), args.get("department", "")
    q = args.get("q", "").strip()[:MAX_QUERY]
    search_limit, http_status = None, 200
    sensitive = [k for k in SENSITIVE_QUERY_KINDS if q and _normalise(k, q)]
    if sensitive:
        try:
            services.count_sensitive_search(actor, sensitive)
        except services.SearchLimit as exc:
            db.session.commit()  # the refusal is audited
            search_limit, http_status = exc.message, 429
    columns = _hook("customers.list_columns", actor)
    builtin_sort, sort, descending = _sort_choice(args, columns)
    pager, total, capped, scanned_out = {}, None, False, False
    sure, candidates = search_clauses(q) if q and search_limit is None else ([], [])
    if search_limit is not None:
        rows = []  # refused: no answer at all, whatever the number
    elif q:  # search: newest first, candidates confirmed by decrypting only what is shown
        ids, next_after, scanned_out = services.search_page(
            remit, q, sure, candidates, size, after=args.get("after", type=int))
        rows = services.list_rows(ids)
        if next_after:
            pager["next"] = {"after": next_after}
        if args.get("after"):
            pager["first"] = {}
        if not candidates:
            from sqlalchemy import or_
            total, capped = _total(remit.where(or_(*sure)), ids,
                                   next_after is None and not args.get("after"))
    elif builtin_sort or sort is not None:  # a sorted list: bounded OFFSET paging
        page = min(max(args.get("page", type=int) or 1, 1), MAX_SORTED_PAGE)
        stmt = api.scoped_customers(actor).where(*conditions)
        if owner == "me":
            stmt = stmt.where(Customer.owner_id == actor.id)
        elif owner == "shared":
            stmt = stmt.where(Customer.id.in_(select(Share.customer_id).where(Share.user_id == actor.id)))
        for extra, value in applied:
            stmt = extra.apply(stmt, value)
        if builtin_sort:
            stmt = services.sorted_statement(stmt, builtin_sort, descending)
        else:
            stmt = sort.sort(stmt, descending).order_by(Customer.id.desc())
        ids = db.session.scalars(stmt.with_only_columns(Customer.id).offset((page - 1) * size).limit(size + 1)).all()
        if len(ids) > size and page < MAX_SORTED_PAGE:
            pager["next"] = {"page": page + 1}
        if page > 1:
            pager["prev"] = {"page": page - 1}
        rows = services.list_rows(list(dict.fromkeys(ids[:size])))
        total, capped = _total(remit, rows, page == 1 and len(ids) <= size)
    else:  # the default list: keyset paging by id, newest first, no OFFSET
        ids, has_prev, has_next = services.keyset_page(
            remit, size, after=args.get("after", type=int), before=args.get("before", type=int))
        if ids and has_next:
            pager["next"] = {"after": ids[-1]}
        if ids and has_prev:
            pager["prev"] = {"before": ids[0]}
        rows = services.list_rows(ids)
        total, capped = _total(remit, ids, not (has_prev or has_next))
    values = {c.key: c.values(rows) or {} for c in columns}
    base_args = {k: v for k, v in args.to_dict().items() if k not in ("after", "before", "page")}
    if not (builtin_sort or sort):  # an unknown sort (e.g. of a module disabled here) is dropped
        base_args = {k: v for k, v in base_args.items() if k not in ("sort", "dir")}

    list_path = url_for("customers.index")

    def page_url(**changes):  # the list's own address with other arguments: one url_for a page, not one a link
        query = {k: v for k, v in {**base_args, **changes}.items() if v is not None}
        return f"{list_path}?{urlencode(query)}" if query else list_path

    def sort_url(key):
        current = builtin_sort or (sort.key if sort else "")
        direction = "asc" if current == key and descending else "desc"
        return page_url(sort=key, dir=direction)

    filter_args = {k: v for k, v in base_args.items() if k not in ("size", "sort", "dir")}
    staff = services.assignable_owners(actor) if actor.role == "head" else []
    html = render_template(
        "customers/list.html", customers=rows, q=q, status=status, kind=kind, owner=owner,
        department=department, owner_choices=_owner_choices(actor, staff), department_choices=_department_choices(actor),
        extra_filters=extra_filters, columns=columns, values=values, pager=pager, page_url=page_url,
        sort=builtin_sort or (sort.key if sort else ""), direction="desc" if descending else "asc",
        sort_url=sort_url, size=size, page_sizes=PAGE_SIZES, total=total, capped=capped,
        count_cap=services.COUNT_CAP, scanned_out=scanned_out, filter_args=filter_args,
        can_create=can(actor, "customers.create"), can_import=can(actor, "customers.import"),
        can_export=can(actor, "customers.export") or can(actor, "customers.marketing_export"),
        can_bulk_export=can(actor, "customers.export"),
        can_reassign=actor.role == "head" and can(actor, "customers.edit"),
        can_share=can(actor, "customers.share"),
        reassign_owners=staff,
        share_users=services.share_colleagues(actor, staff or None) if can(actor, "customers.share") else [],
        search_limit=search_limit, rows_html=_rows_html(rows, list_path, columns, values))
    if q and search_limit is None:
        # after rendering, as the customer page: the page leaves only once its entry is committed,
        # and the commit does not expire what the page still had to read
        kinds = [k for k in ("phone", "id_number", "name") if _normalise(k, q)]
        kinds += sorted(f"partial_{k}" for k in search.query_kinds(q))
        audit.record("customers.customer.searched", actor=actor, target_type="customers_customer",
                     shown=[c.id for c in rows], query_kinds=kinds)
        db.session.commit()
    return html, http_status


def _bulk_ids():
    return request.form.getlist("selected")


def _back_to_list():
    return redirect(safe_local_url(request.form.get("next"), url_for("customers.index")))


@bp.route("/bulk/reassign", methods=["POST"])
@require("customers.edit", kind="action")
def bulk_reassign():
    """Reassign the selected customers to another owner (department heads)."""
    actor = _actor()
    try:
        changed = services.bulk_reassign(actor, _bulk_ids(), request.form.get("owner_id"))
        db.session.commit()
    except services.NotAllowed:
        db.session.rollback()
        abort(403)
    except services.CustomerError as exc:
        db.session.rollback()
        message = exc.message
        if isinstance(exc, services.InvalidData):
            message = "; ".join(str(m) for m in exc.errors.values())
        flash(message, "danger")
        return _back_to_list()
    flash(_("%(count)d customers reassigned.", count=len(changed)), "success")
    return _back_to_list()


@bp.route("/bulk/share", methods=["POST"])
@require("customers.share", kind="action")
def bulk_share():
    """Share the selected customers with a colleague (owner or head)."""
    actor = _actor()
    try:
        shared, skipped = services.bulk_share(actor, _bulk_ids(), request.form.get("user_id"))
        db.session.commit()
    except services.NotAllowed:
        db.session.rollback()
        abort(403)
    except services.CustomerError as exc:
        db.session.rollback()
        message = exc.message
        if isinstance(exc, services.InvalidData):
            message = "; ".join(str(m) for m in exc.errors.values())
        flash(message, "danger")
        return _back_to_list()
    flash(_("%(count)d customers shared (%(skipped)d already shared or owned by the colleague).",
            count=len(shared), skipped=len(skipped)), "success")
    return _back_to_list()


@bp.route("/incomplete")
@require("customers.view")
def incomplete():
    """The owner's records that lack fields of a complete record, with what is missing."""
    actor = _actor()
    stmt = api.scoped_customers(actor).where(Customer.completeness < 100)
    owner = request.args.get("owner", "")
    if actor.role == "head":
        if owner.isdigit():
            stmt = stmt.where(Customer.owner_id == int(owner))
    else:
        stmt = stmt.where(Customer.owner_id == actor.id)
    after = request.args.get("after", type=int)
    if after:
        stmt = stmt.where(Customer.id < after)
    size = current_app.config["PAGE_SIZE"]
    rows = db.session.scalars(stmt.options(selectinload(Customer.subject_key), selectinload(Customer.owner))
                              .order_by(Customer.id.desc()).limit(size + 1)).all()
    next_after = rows[size - 1].id if len(rows) > size else None
    rows = rows[:size]
    return render_template("customers/incomplete.html", rows=[(c, quality.completeness(c)) for c in rows],
                           next_after=next_after, owner=owner,
                           owner_choices=_owner_choices(actor, services.assignable_owners(actor)) if actor.role == "head" else [])


# --- create --------------------------------------------------------------------------------------

def _prepare_owner_field(form, actor, current_owner_id=None):
    owners = services.assignable_owners(actor)
    if current_owner_id and current_owner_id not in {u.id for u in owners}:
        owner = db.session.get(User, current_owner_id)
        owners = [owner, *owners] if owner else owners
    form.owner_id.choices = [(str(u.id), f"{u} ({u.username})") for u in owners]


@bp.route("/new", methods=["GET", "POST"])
@require("customers.create", kind="form")
def new():
    actor = _actor()
    kind = request.args.get("kind", "")
    if kind not in FORMS:
        return render_template("customers/new_kind.html")
    form = FORMS[kind]()
    _prepare_owner_field(form, actor)
    if request.method == "GET":
        form.owner_id.data = str(actor.id)
        form.consent_notice_version.data = services.notice_version()
    duplicates, general, status, probe_limited = None, [], 200, False
    if request.method == "POST" and not quality.probes_left(actor):
        # the duplicate check would be an oracle: refuse it (and so the record), whatever was typed
        probe_limited, status = True, 429
    elif form.validate_on_submit():
        data = {**form.customer_data(), "kind": kind}
        owner = form.owner_id.data if actor.role == "head" else None
        try:
            customer = services.create_customer(actor, data, owner=owner, consent=form.consent_data())
            matches = quality.find_duplicates(
                actor, phone=customer.phone, id_number=customer.id_number if kind == "person" else None,
                credit_code=customer.credit_code, name=customer.display_name, exclude_id=customer.id)
            mine, others = quality.split_by_remit(actor, matches)
            elsewhere = [(c.id, reason) for c, reason in others]
            if matches and request.form.get("confirm_duplicate") != "1":
                db.session.rollback()  # not created: the user decides first
                quality.record_elsewhere(actor, elsewhere, via="form")
                db.session.commit()
                # outside the remit: only that a match may exist, never who, where or which field
                duplicates, status = (mine, bool(elsewhere)), 200
            else:
                quality.record_elsewhere(actor, elsewhere, via="form")
                if matches:
                    audit.record("customers.customer.duplicate_confirmed", target=customer, actor=actor,
                                 duplicates=[c.id for c, _reason in matches])
                services.customer_changed(actor, customer, "customer")  # e.g. graded at once
                db.session.commit()
                flash(_("Customer %(number)s created.", number=customer.number), "success")
                return redirect(url_for("customers.detail", customer_id=customer.id))
        except services.InvalidData as exc:
            db.session.rollback()
            general, status = _apply_errors(form, exc.errors), 400
    elif request.method == "POST":
        status = 400
    return render_template("customers/form.html", form=form, kind=kind, customer=None, duplicates=duplicates,
                           general_errors=general, field_names=KIND_FIELDS[kind], conflicts=None, masked_now={},
                           show_owner=actor.role == "head", show_consent=True, probe_limited=probe_limited,
                           reasons=quality.REASONS, elsewhere_message=quality.ELSEWHERE_MESSAGE,
                           probe_limit_message=quality.PROBE_LIMIT_MESSAGE), status


# --- detail --------------------------------------------------------------------------------------

def _field_rows(customer, revealed):
    rows = []
    for name in (*KIND_FIELDS[customer.kind], "notes"):
        spec = FIELDS[name]
        value = getattr(customer, name)
        row = {"name": name, "label": pick(spec.label), "level": level_of(customer, name), "value": value,
               "masked": False, "revealed": name in revealed, "empty": value in (None, "")}
        if name in revealed:
            row["value"] = revealed[name]
        elif is_masked(customer, name) and not row["empty"]:  # also a birth date from the ID number
            row["value"], row["masked"] = mask_value(name, value), True
        elif name == "gender" and value:
            row["value"] = _choice_label(GENDERS, value)
        elif name in PHONE_FIELDS and value:
            row["value"] = display_phone(value)
        rows.append(row)
    return rows


def _render_detail(customer, *, revealed=None, reveal_errors=None, status=200):
    actor = _actor()
    revealed = revealed or {}
    services.read_history(customer)
    # the newest records once, for the timeline and the records box
    tx = services.transactions(customer, limit=max(DETAIL_TRANSACTIONS + 1, services.TIMELINE_RECORDS))
    events = services.timeline_events(customer, tx) + _hook("customers.timeline", customer, actor)
    events.sort(key=services.sort_key, reverse=True)
    can_share = can(actor, "customers.share") and services.can_manage_shares(actor, customer)
    shares = services.shares_of(customer)
    share_form = None
    if can_share:
        share_form = ShareForm()
        share_form.user_id.choices = [(str(u.id), f"{u} ({u.username})")
                                      for u in services.share_candidates(actor, customer, shares)]
    score, missing = quality.completeness(customer)
    html = render_template(
        "customers/detail.html", customer=customer, actor=actor, rows=_field_rows(customer, revealed),
        revealed=revealed, reveal_errors=reveal_errors or {}, reveal_form=RevealForm(),
        consents=list(reversed(customer.consents)), contacts=customer.contacts if customer.kind == "org" else [],
        transactions=tx[:DETAIL_TRANSACTIONS], more_transactions=len(tx) > DETAIL_TRANSACTIONS,
        history=list(reversed(customer.status_changes)), shares=shares,
        share_form=share_form, timeline=events, panels=_hook("customers.panels", customer, actor),
        score=score, missing=missing, L2=L2, L3=L3,
        has_sensitive_consent=services.has_sensitive_consent(customer),
        can_edit=can(actor, "customers.edit"), can_consent=can(actor, "customers.consent"),
        can_share=can_share, can_reveal={L2: can(actor, "customers.reveal_l2"),
                                         L3: can(actor, "customers.reveal_l3")})
    response = make_response(html, status)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/<int:customer_id>")
@require("customers.view")
def detail(customer_id):
    customer = _customer_or_404(customer_id)
    # rendered first, on the read snapshot; the page leaves only once its audit entry is
    # committed (a failed append answers 500 and the page is dropped). Recording first meant
    # reading the customer, its owner and their relations again after the commit expired them.
    response = _render_detail(customer)
    audit.record("customers.customer.viewed", target=customer, actor=_actor())
    db.session.commit()
    return response


@bp.route("/<int:customer_id>/reveal/<field>", methods=["POST"])
@require("customers.view", kind="action")
def reveal(customer_id, field):
    """Show one masked value once, on this response only (not cached, not in any URL)."""
    actor = _actor()
    customer = _customer_or_404(customer_id)
    if not services.revealable(customer, field):
        abort(404)
    form = RevealForm()
    try:
        value = services.reveal(actor, customer, field, form.reason.data)
    except services.NotAllowed as exc:
        deny(exc.permission)
    except services.InvalidData as exc:
        db.session.rollback()
        return _render_detail(customer, reveal_errors={field: exc.errors.get("reason") or exc.message},
                              status=400)
    except services.RevealLimit as exc:
        db.session.rollback()
        return _render_detail(customer, reveal_errors={field: exc.message}, status=429)
    db.session.commit()
    response = _render_detail(customer, revealed={field: value})
    response.headers["Pragma"] = "no-cache"
    return response


# --- edit ----------------------------------------------------------------------------------------

def _fill_form(form, customer):
    for name in (*form.kind_fields, "source", "tags", "notes"):
        if name in MASKED_FIELDS or (name in FIELDS and is_masked(customer, name)):
            continue
        form[name].data = getattr(customer, name) or ""
        if name in PHONE_FIELDS:  # prefilled as people write it; saved back as the same E.164 value
            form[name].data = display_phone(form[name].data)
    form.version.data = str(customer.version)
    form.owner_id.data = str(customer.owner_id)
    form.consent_notice_version.data = services.notice_version()


def _conflicts(customer, form):
    """Fields whose stored value differs from what the user submitted (masked values stay masked)."""
    clean, _errors = services.clean_customer_data(customer.kind, form.customer_data(keep_masked=True),
                                                  partial=True)
    rows = []
    for name, mine in clean.items():
        spec = FIELDS.get(name)
        current = getattr(customer, name)
        if (current or None) == mine:
            continue
        masked = spec is not None and is_masked(customer, name)
        shown = (mask_value(name, current) if current else "") if masked else (current or "")
        rows.append({"name": name, "label": pick(spec.label) if spec else OTHER_LABELS.get(name, name),
                     "current": shown, "masked": masked})
    return rows


@bp.route("/<int:customer_id>/edit", methods=["GET", "POST"])
@require("customers.edit", kind="form")
def edit(customer_id):
    actor = _actor()
    customer = _customer_or_404(customer_id)
    form = FORMS[customer.kind]()
    _prepare_owner_field(form, actor, customer.owner_id)
    show_consent = not services.has_sensitive_consent(customer) or not consent_rules.covers_collection(customer)
    if request.method == "GET":
        _fill_form(form, customer)
    general, conflicts, status = [], None, 200
    if form.validate_on_submit():
        owner = form.owner_id.data if actor.role == "head" else None
        data = form.customer_data(keep_masked=True)
        if customer.kind == "person" and customer.id_number and "id_number" not in data:
            # derived from the kept ID number, shown masked: it changes only with the number
            data.pop("birth_date", None)
        try:
            changed = services.update_customer(actor, customer, data,
                                               form.version.data, owner=owner,
                                               consent=form.consent_data() if show_consent else None)
            if changed:
                services.customer_changed(actor, customer, "customer")
            db.session.commit()
        except services.StaleEdit as exc:
            db.session.rollback()
            customer = _customer_or_404(customer_id)
            conflicts = _conflicts(customer, form)
            form.version.data = str(customer.version)  # saving again is a decision made on the new values
            general, status = [exc.message], 409
        except services.InvalidData as exc:
            db.session.rollback()
            general, status = _apply_errors(form, exc.errors), 400
        else:
            flash(_("Saved.") if changed else _("Nothing was changed."), "success" if changed else "info")
            return redirect(url_for("customers.detail", customer_id=customer.id))
    elif request.method == "POST":
        status = 400
    masked_now = {name: mask_value(name, getattr(customer, name)) for name in KIND_FIELDS[customer.kind]
                  if is_masked(customer, name) and getattr(customer, name)}
    return render_template("customers/form.html", form=form, kind=customer.kind, customer=customer,
                           duplicates=None, general_errors=general, conflicts=conflicts, reasons=quality.REASONS,
                           field_names=KIND_FIELDS[customer.kind], masked_now=masked_now,
                           show_owner=actor.role == "head", show_consent=show_consent), status


# --- status --------------------------------------------------------------------------------------

@bp.route("/<int:customer_id>/status", methods=["GET", "POST"])
@require("customers.edit", kind="form")
def status(customer_id):
    actor = _actor()
    customer = _customer_or_404(customer_id)
    form = StatusForm()
    if request.method == "GET":
        form.status.data = customer.status
    general, code = [], 200
    if form.validate_on_submit():
        try:
            services.change_status(actor, customer, form.status.data, form.reason.data)
            db.session.commit()
        except services.StaleEdit as exc:
            db.session.rollback()
            general, code = [exc.message], 409
        except services.InvalidData as exc:
            db.session.rollback()
            general, code = _apply_errors(form, exc.errors), 400
        else:
            flash(_("Status changed."), "success")
            return redirect(url_for("customers.detail", customer_id=customer.id))
    elif request.method == "POST":
        code = 400
    return render_template("customers/status.html", form=form, customer=customer, general_errors=general), code


# --- consent -------------------------------------------------------------------------------------

def _consent_or_404(customer, consent_id):
    consent = db.session.scalar(select(Consent).where(Consent.id == consent_id,
                                                      Consent.customer_id == customer.id))
    if consent is None:
        abort(404)
    return consent


@bp.route("/<int:customer_id>/consents/new", methods=["GET", "POST"])
@require("customers.consent", kind="form")
def consent_new(customer_id):
    actor = _actor()
    customer = _customer_or_404(customer_id)
    form = ConsentForm()
    if request.method == "GET":
        form.consent_notice_version.data = services.notice_version()
    general, code = [], 200
    if form.validate_on_submit():
        data = form.consent_data()
        try:
            services.record_consent(actor, customer, data["purposes"], data["scope"], data["channel"],
                                    data["sensitive"], data["notice_version"])
            db.session.commit()
        except services.InvalidData as exc:
            db.session.rollback()
            general, code = _apply_errors(form, {f"consent_{k}": v for k, v in exc.errors.items()}), 400
        else:
            flash(_("Consent recorded."), "success")
            return redirect(url_for("customers.detail", customer_id=customer.id, _anchor="consents"))
    elif request.method == "POST":
        code = 400
    return render_template("customers/consent.html", form=form, customer=customer, general_errors=general,
                           consent_fields=CONSENT_FIELDS), code


@bp.route("/<int:customer_id>/consents/<int:consent_id>/withdraw", methods=["GET", "POST"])
@require("customers.consent", kind="form")
def consent_withdraw(customer_id, consent_id):
    actor = _actor()
    customer = _customer_or_404(customer_id)
    consent = _consent_or_404(customer, consent_id)
    form = ReasonForm()
    general, code = [], 200
    erases = (consent.sensitive and consent.active and
              not any(c.active and c.sensitive for c in customer.consents if c.id != consent.id) and
              [pick(FIELDS[n].label) for n in services.SENSITIVE_FIELDS if getattr(customer, n)])
    if form.validate_on_submit():
        try:
            erased = services.withdraw_consent(actor, consent, form.reason.data)
            db.session.commit()
        except services.InvalidData as exc:
            db.session.rollback()
            general, code = _apply_errors(form, exc.errors), 400
        else:
            flash(_("Consent withdrawn: processing that relies on it stops now."), "success")
            if erased:
                flash(_("The customer's sensitive data has been deleted."), "info")
            return redirect(url_for("customers.detail", customer_id=customer.id, _anchor="consents"))
    elif request.method == "POST":
        code = 400
    return render_template("customers/withdraw.html", form=form, customer=customer, consent=consent,
                           erases=erases or [], general_errors=general), code


# --- contacts ------------------------------------------------------------------------------------

def _contact_or_404(customer, contact_id):
    contact = services.contact_of(customer, contact_id)
    if contact is None:
        abort(404)
    return contact


def _contact_page(customer, contact=None):
    actor = _actor()
    if customer.kind != "org":
        abort(404)
    form = ContactForm()
    if request.method == "GET" and contact is not None:
        for name in ("name", "title", "phone", "email"):
            form[name].data = getattr(contact, name) or ""
            if name == "phone":
                form[name].data = display_phone(form[name].data)
    general, code = [], 200
    if form.validate_on_submit():
        try:
            if contact is None:
                services.add_contact(actor, customer, form.contact_data())
            else:
                services.update_contact(actor, contact, form.contact_data())
            db.session.commit()
        except services.InvalidData as exc:
            db.session.rollback()
            general, code = _apply_errors(form, exc.errors), 400
        else:
            flash(_("Contact saved."), "success")
            return redirect(url_for("customers.detail", customer_id=customer.id, _anchor="contacts"))
    elif request.method == "POST":
        code = 400
    return render_template("customers/contact.html", form=form, customer=customer, contact=contact,
                           general_errors=general), code


@bp.route("/<int:customer_id>/contacts/new", methods=["GET", "POST"])
@require("customers.edit", kind="form")
def contact_new(customer_id):
    return _contact_page(_customer_or_404(customer_id))


@bp.route("/<int:customer_id>/contacts/<int:contact_id>/edit", methods=["GET", "POST"])
@require("customers.edit", kind="form")
def contact_edit(customer_id, contact_id):
    customer = _customer_or_404(customer_id)
    return _contact_page(customer, _contact_or_404(customer, contact_id))


@bp.route("/<int:customer_id>/contacts/<int:contact_id>/delete", methods=["POST"])
@require("customers.edit", kind="action")
def contact_delete(customer_id, contact_id):
    customer = _customer_or_404(customer_id)
    services.remove_contact(_actor(), _contact_or_404(customer, contact_id))
    db.session.commit()
    flash(_("Contact removed."), "success")
    return redirect(url_for("customers.detail", customer_id=customer.id, _anchor="contacts"))


# --- transactions and service records ------------------------------------------------------------

@bp.route("/<int:customer_id>/transactions")
@require("customers.view")
def transactions(customer_id):
    customer = _customer_or_404(customer_id)
    kind = request.args.get("kind", "")
    kind = kind if kind in services.TRANSACTION_KINDS else None
    before = None
    cursor = request.args.get("before", "")
    if cursor:
        try:
            day, last_id = cursor.split("_", 1)
            before = (services.parse_date(day), int(last_id))
        except (ValueError, validation.ValidationError):
            abort(400)
    size = current_app.config["PAGE_SIZE"]
    rows = services.transactions(customer, kind=kind, before=before, limit=size + 1)
    next_cursor = f"{rows[size - 1].occurred_on.isoformat()}_{rows[size - 1].id}" if len(rows) > size else None
    return render_template("customers/transactions.html", customer=customer, transactions=rows[:size],
                           kind=kind or "", next_cursor=next_cursor,
                           can_edit=can(_actor(), "customers.edit"))


@bp.route("/<int:customer_id>/transactions/new", methods=["GET", "POST"])
@require("customers.edit", kind="form")
def transaction_new(customer_id):
    actor = _actor()
    customer = _customer_or_404(customer_id)
    form = TransactionForm()
    if request.method == "GET":
        form.kind.data = request.args.get("kind") if request.args.get("kind") in services.TRANSACTION_KINDS \
            else "transaction"
    general, code = [], 200
    if form.validate_on_submit():
        try:
            services.add_transaction(actor, customer, form.transaction_data())
            db.session.commit()
        except services.InvalidData as exc:
            db.session.rollback()
            general, code = _apply_errors(form, exc.errors), 400
        else:
            flash(_("Record added."), "success")
            return redirect(url_for("customers.detail", customer_id=customer.id, _anchor="transactions"))
    elif request.method == "POST":
        code = 400
    return render_template("customers/transaction.html", form=form, customer=customer,
                           general_errors=general), code


def _transaction_or_404(customer, transaction_id):
    record = services.transaction_of(customer, transaction_id)
    if record is None:
        abort(404)
    return record


@bp.route("/<int:customer_id>/transactions/<int:transaction_id>/correct", methods=["GET", "POST"])
@require("customers.edit", kind="form")
def transaction_correct(customer_id, transaction_id):
    """Correct a transaction or service record, with a reason (audited)."""
    actor = _actor()
    customer = _customer_or_404(customer_id)
    record = _transaction_or_404(customer, transaction_id)
    if record.voided:
        abort(404)
    form = TransactionCorrectionForm()
    if request.method == "GET":
        form.kind.data, form.occurred_on.data = record.kind, record.occurred_on.isoformat()
        form.amount.data = f"{abs(record.amount):.2f}" if record.amount is not None else ""
        form.product.data, form.channel.data, form.notes.data = record.product, record.channel, record.notes
    general, code = [], 200
    if form.validate_on_submit():
        try:
            services.correct_transaction(actor, record, form.transaction_data())
            db.session.commit()
        except services.InvalidData as exc:
            db.session.rollback()
            general, code = _apply_errors(form, exc.errors), 400
        else:
            flash(_("Record corrected."), "success")
            return redirect(url_for("customers.transactions", customer_id=customer.id,
                                    _anchor=f"transaction-{record.id}"))
    elif request.method == "POST":
        code = 400
    return render_template("customers/transaction_correct.html", form=form, customer=customer, record=record,
                           general_errors=general), code


@bp.route("/<int:customer_id>/transactions/<int:transaction_id>/void", methods=["GET", "POST"])
@require("customers.edit", kind="form")
def transaction_void(customer_id, transaction_id):
    """Void a transaction or service record, with a reason (audited); it stays visible, struck through."""
    actor = _actor()
    customer = _customer_or_404(customer_id)
    record = _transaction_or_404(customer, transaction_id)
    form = TransactionVoidForm()
    general, code = [], 200
    if form.validate_on_submit():
        try:
            services.void_transaction(actor, record, {"reason": form.reason.data})
            db.session.commit()
        except services.InvalidData as exc:
            db.session.rollback()
            general, code = _apply_errors(form, exc.errors), 400
        else:
            flash(_("Record voided."), "success")
            return redirect(url_for("customers.transactions", customer_id=customer.id,
                                    _anchor=f"transaction-{record.id}"))
    elif request.method == "POST":
        code = 400
    return render_template("customers/transaction_void.html", form=form, customer=customer, record=record,
                           general_errors=general), code


# --- sharing -------------------------------------------------------------------------------------

@bp.route("/<int:customer_id>/shares", methods=["POST"])
@require("customers.share", kind="action")
def share(customer_id):
    actor = _actor()
    customer = _customer_or_404(customer_id)
    form = ShareForm()
    try:
        services.share_customer(actor, customer, form.user_id.data)
        db.session.commit()
    except services.NotAllowed as exc:
        deny(exc.permission)
    except services.InvalidData as exc:
        db.session.rollback()
        flash(next(iter(exc.errors.values())), "error")
    else:
        flash(_("Customer shared."), "success")
    return redirect(url_for("customers.detail", customer_id=customer.id, _anchor="shares"))


@bp.route("/<int:customer_id>/shares/<int:share_id>/delete", methods=["POST"])
@require("customers.share", kind="action")
def unshare(customer_id, share_id):
    actor = _actor()
    customer = _customer_or_404(customer_id)
    share_row = db.session.scalar(select(Share).where(Share.id == share_id, Share.customer_id == customer.id))
    if share_row is None:
        abort(404)
    try:
        services.unshare_customer(actor, share_row)
        db.session.commit()
    except services.NotAllowed as exc:
        deny(exc.permission)
    flash(_("Sharing ended."), "success")
    return redirect(url_for("customers.detail", customer_id=customer.id, _anchor="shares"))


# The handover page (endpoint customers.handover) lives in io_views.py.


# --- export of a selection or of the list's filter (used by the export page in io_views) -------

class ExportSelection:
    """What an export holds when it comes from the list: ``kind`` "all" (the whole remit),
    "ids" (the selected rows) or "filter" (the list's filter and search); ``hidden`` carries it
    through the export form; ``kwargs`` go to io.export_customers (where, keep, selection)."""

    def __init__(self, kind="all", hidden=(), kwargs=None, numbers=(), description=""):
        self.kind, self.hidden, self.kwargs = kind, list(hidden), kwargs or {}
        self.numbers, self.description = list(numbers), description


FILTER_KEYS = ("q", "status", "kind", "owner", "department")


def export_selection(actor, values):
    """The ExportSelection named by ``values`` (the export page's query string or form)."""
    from sqlalchemy import and_, or_
    ids = sorted({int(i) for i in values.getlist("selected") if str(i).isdigit()})
    if ids:
        ids = ids[:services.BULK_MAX]
        numbers = db.session.scalars(api.scoped_customers(actor).where(Customer.id.in_(ids))
                                     .with_only_columns(Customer.number).order_by(Customer.id)).all()
        return ExportSelection("ids", [("selected", i) for i in ids],
                               {"where": Customer.id.in_(ids), "selection": {"selected": numbers}},
                               numbers=numbers)
    if values.get("scope") != "filter":
        return ExportSelection()
    extra_params = [f.param for f in _hook("customers.list_filters", actor)]
    args = {k: values.get(k, "") for k in (*FILTER_KEYS, *extra_params) if values.get(k)}
    conditions, owner, _extra, applied = list_conditions(actor, args)
    clauses = list(conditions)
    if owner == "me":
        clauses.append(Customer.owner_id == actor.id)
    elif owner == "shared":
        clauses.append(Customer.id.in_(select(Share.customer_id).where(Share.user_id == actor.id)))
    for extra, value in applied:
        clauses.append(Customer.id.in_(extra.apply(select(Customer.id), value)))
    keep = None
    q = args.get("q", "").strip()[:MAX_QUERY]
    if q:
        sure, candidates = search_clauses(q)
        candidate_clause = or_(*[c for _key, c in candidates]) if candidates else None
        clauses.append(or_(*sure, *([candidate_clause] if candidate_clause is not None else [])))
        if candidate_clause is not None:
            scoped = api.scoped_customers(actor).with_only_columns(Customer.id)
            candidate_ids = set(db.session.scalars(scoped.where(candidate_clause)))
            sure_ids = set(db.session.scalars(scoped.where(candidate_clause, or_(*sure))))

            def keep(customer):
                return (customer.id not in candidate_ids or customer.id in sure_ids
                        or search.confirms(customer, q))
    hidden = [("scope", "filter"), *args.items()]
    # the search text itself may be personal data: only that there was one is kept
    description = sorted(f"{k}={v}" for k, v in args.items() if k != "q") + (["search"] if q else [])
    return ExportSelection("filter", hidden, {"where": and_(*clauses) if clauses else None, "keep": keep,
                                              "selection": {"filter": description}})
