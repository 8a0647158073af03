"""Demo archives for `kehu init --demo` (hook core.demo): documents for the first customers of
each department (some archives complete, some missing a document), and view/borrow requests
across departments in every state (waiting, active, overdue, returned), so every archives page
has something to show. Everything goes through the module's services, audited."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from core.api import db, is_enabled
from modules.customers import Customer, Transaction

from . import services

PER_DEPARTMENT = 12
STORAGE = ("档案室A柜{n}层", "档案室B柜{n}层", "财务室保险柜{n}号")


def _amount(customer_id):
    """The largest transaction of the customer, for its contract and invoice (None if none)."""
    return db.session.scalar(select(Transaction.amount).where(
        Transaction.customer_id == customer_id, Transaction.kind == "transaction",
        Transaction.voided_at.is_(None)).order_by(Transaction.amount.desc()).limit(1))


def _documents(customer, keeper, index):
    """basic_info always; contract, invoice and payment for customers with a transaction; every
    third archive lacks its contract (the incomplete-archives page has something to show)."""
    made = 0
    created = customer.created_at.date()
    location = STORAGE[index % len(STORAGE)].format(n=index % 5 + 1)
    plan = [("basic_info", "客户基本信息登记表", None, created)]
    amount = _amount(customer.id)
    if amount is not None and index % 3 != 2:
        plan.append(("contract", "销售合同", amount, created + timedelta(days=3)))
        plan.append(("invoice", "增值税普通发票", amount, created + timedelta(days=10)))
        plan.append(("payment", "银行转账回单", amount, created + timedelta(days=12)))
    if index % 4 == 0:
        plan.append(("after_sales", "售后服务单", None, created + timedelta(days=40)))
    for doc_type, title, value, day in plan:
        services.create_document(keeper, customer, {
            "doc_type": doc_type, "title": title, "doc_date": min(day, services.today()),
            "amount": value, "keeper_id": keeper.id, "storage_location": location})
        made += 1
    return made


def _requests(by_department, users):
    """A member of each department asks for an archive of the next department's customer: a view
    waiting for the head, a borrowing lent out, one overdue and one returned."""
    heads = {u.department_id: u for u in users if u.role == "head" and u.active}
    staff = {}
    for u in users:
        if u.role in ("sales", "service") and u.active and u.department_id is not None:
            staff.setdefault(u.department_id, u)
    dept_ids = [d for d in by_department if d in heads and d in staff]
    made = 0
    today = services.today()
    for n, dept_id in enumerate(dept_ids):
        other = dept_ids[(n + 1) % len(dept_ids)]
        if other == dept_id:
            break
        requester, head = staff[dept_id], heads[other]
        customers = by_department[other]
        plans = (("view", "核对合同条款，准备续约", 7, "waiting"),
                 ("borrow", "原件用于招投标资质审核", 10, "lent"),
                 ("borrow", "原件用于审计抽查", 5, "overdue"),
                 ("borrow", "原件用于银行授信材料", 5, "returned"))
        for customer, (kind, purpose, days, state) in zip(customers, plans, strict=False):
            req = services.create_request(requester, customer.number, kind, purpose, today + timedelta(days=days))
            made += 1
            if state == "waiting":
                continue
            services.approve_request(head, req, "同意，按期归还")
            if state == "overdue":
                req.until = today - timedelta(days=3)  # lent out a while ago, not back yet
            elif state == "returned":
                services.mark_returned(head, req)
    return made


def demo(departments, users):
    """core.demo: archives for the departments that enabled the module."""
    by_department = {}
    docs = 0
    owners = {u.id: u for u in users}
    for dept in departments:
        if not is_enabled("archives", dept.id):
            continue
        customers = db.session.execute(select(Customer).where(Customer.department_id == dept.id)
                                       .order_by(Customer.id).limit(PER_DEPARTMENT)).scalars().all()
        by_department[dept.id] = customers
        for index, customer in enumerate(customers):
            keeper = owners.get(customer.owner_id)
            if keeper is None:
                continue
            docs += _documents(customer, keeper, index)
    if not by_department:
        return None
    db.session.flush()
    requests = _requests(by_department, users)
    return f"{docs} archive documents, {requests} view/borrow requests"
