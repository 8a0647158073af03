"""`kehu visits due` (counts only) and the demo data of `kehu init --demo` (core.demo hook)."""
from sqlalchemy import select

from core.db import db


def test_due_counts_per_department(vw, runner, days):
    today = vw.today()
    vw.visit(vw.c1, on=today - days(5), next_contact_on=today - days(1), next_step="保密的下一步")
    vw.visit(vw.customer2, next_contact_on=today)
    vw.visit(vw.customer3, next_contact_on=today + days(3))
    vw.visit(vw.c2, actor="sales2", next_contact_on=today + days(30))
    result = runner("visits", "due")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["D1\toverdue 1\ttoday 1\tnext 7 days 1",
                                          "D2\toverdue 0\ttoday 0\tnext 7 days 0"]
    assert "保密的下一步" not in result.output and "王小明" not in result.output
    result = runner("visits", "due", "--department", "D3")
    assert result.exit_code != 0 and "not enabled for department D3" in result.output
    result = runner("visits", "due", "--department", "NOPE")
    assert result.exit_code != 0 and len(result.output.strip().splitlines()) == 1


def test_demo_data_logs_visits_for_the_demo_customers(vw, app):
    from core.models import Department, User
    from modules.visits import hooks
    from modules.visits.models import Visit
    with app.app_context():
        users = db.session.scalars(select(User).order_by(User.id)).all()
        departments = db.session.scalars(select(Department)).all()
        message = hooks.demo(departments, users)
        db.session.commit()
        visits = db.session.scalars(select(Visit)).all()
    assert message == f"{len(visits)} visits logged" and len(visits) == 4  # sales1: 3 of 4 customers, sales2: 1
    assert {v.owner_id for v in visits} == {vw.ids["sales1"], vw.ids["sales2"]}
    html = vw.client("sales1").get("/visits/due").get_data(as_text=True)
    assert 'id="visits-due-overdue"' in html and "发送培训方案" in html
    assert [e.action for e in vw.audit("visits.")] == ["visits.visit.created"] * 4
