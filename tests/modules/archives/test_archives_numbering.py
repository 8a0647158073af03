"""DA numbers: unique under concurrent creation, never handed out again after a deletion."""
import datetime
import io
import re
import threading

from sqlalchemy import select

from core.db import db
from core.models import User

THREADS = 6
PER_THREAD = 5


def test_concurrent_creation_gives_unique_consecutive_numbers(arch, app):
    from modules.archives import services
    from modules.archives.models import Document
    from modules.customers import Customer
    customers = [arch.customer(name=f"并发客户{i}") for i in range(2)]
    start = threading.Barrier(THREADS)
    numbers, errors = [], []

    def worker(index):
        try:
            with app.app_context():  # each thread: its own app context, session and connection
                start.wait(30)  # (before any query: on SQLite every transaction takes the write lock)
                actor = db.session.get(User, arch.ids["sales1"])
                for n in range(PER_THREAD):
                    customer = db.session.get(Customer, customers[(index + n) % 2])
                    doc = services.create_document(actor, customer, {
                        "doc_type": "order", "title": f"订单 {index}-{n}", "doc_date": datetime.date(2026, 3, 1),
                        "amount": "1.00", "keeper_id": actor.id, "storage_location": ""})
                    db.session.commit()
                    numbers.append(doc.number)
                db.session.remove()
        except Exception as exc:  # reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(numbers) == THREADS * PER_THREAD
    assert len(set(numbers)) == len(numbers), "duplicate document numbers"
    assert all(re.fullmatch(r"DA-\d{4}-\d{6}", n) for n in numbers)
    serials = sorted(int(n.rsplit("-", 1)[1]) for n in numbers)
    assert serials == list(range(serials[0], serials[0] + len(serials)))  # no gaps, no repeats
    with app.app_context():
        stored = db.session.execute(select(Document.number)).scalars().all()
        assert sorted(stored) == sorted(numbers)


def test_number_of_a_deleted_document_is_never_reused(arch, app):
    from modules.archives import services
    from modules.archives.models import Document
    cid = arch.customer()
    _, first = arch.document(cid)
    last_id, last = arch.document(cid)
    with app.app_context():  # delete the newest: the counter must not step back
        doc = db.session.get(Document, last_id)
        services.delete_document(db.session.get(User, arch.ids["sales1"]), doc)
        db.session.commit()
    _, after = arch.document(cid)
    assert after not in (first, last)
    assert int(after.rsplit("-", 1)[1]) == int(last.rsplit("-", 1)[1]) + 1


def test_a_refused_creation_consumes_no_number(arch):
    cid = arch.customer()
    _, first = arch.document(cid)
    client = arch.client("sales1")
    response = client.post(f"/archives/{cid}/new", data={
        "doc_type": "contract", "title": "带病毒的合同", "doc_date": "2026-03-31",
        "keeper_id": str(arch.ids["sales1"]), "attachment": (io.BytesIO(b"MZ\x90\x00"), "a.pdf"),
    }, content_type="multipart/form-data")
    assert response.status_code == 200
    _, second = arch.document(cid)
    assert int(second.rsplit("-", 1)[1]) == int(first.rsplit("-", 1)[1]) + 1
