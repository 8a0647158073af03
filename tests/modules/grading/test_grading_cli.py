"""`kehu grading recompute [--department CODE]`: progress bar and a one-line summary."""
from sqlalchemy import select

from core.audit import AuditEntry
from core.db import db
from modules.grading.models import Grade


def test_recompute_every_department_using_grading(runner, grading_dept, make_customer, make_user, enable_module,
                                                  department, app):
    important = make_customer(grading_dept.sales, transactions=[(150000, 5)])
    make_customer(grading_dept.sales)
    other = make_user("d2_sales", "sales", "D2")
    enable_module("D2", "grading")
    make_customer(other)
    department("D3")  # does not use grading: skipped
    result = runner("grading", "recompute")
    assert result.exit_code == 0, result.output
    # the progress bars (standard error) name each department; standard output has the summary only
    assert "grading D1" in result.stderr and "grading D2" in result.stderr
    assert "grading D3" not in result.output
    assert result.stdout.splitlines() == ["graded 3 customers in 2 department(s): 3 changed, 0 overrides kept"]
    with app.app_context():
        assert db.session.get(Grade, important).grade == "important"
        entries = db.session.execute(select(AuditEntry).where(AuditEntry.action == "grading.grades.recomputed")
                                     ).scalars().all()
        assert len(entries) == 2 and all(e.actor.startswith("cli:") for e in entries)
    result = runner("grading", "recompute", "--department", "D1")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["graded 2 customers in 1 department(s): 0 changed, 0 overrides kept"]


def test_progress_bar_on_a_terminal(runner, grading_dept, make_customer, monkeypatch):
    """Where standard output is a terminal, click draws the bar with its position."""
    import click._termui_impl as impl
    monkeypatch.setattr(impl, "isatty", lambda stream: True)
    for _ in range(3):
        make_customer(grading_dept.sales)
    result = runner("grading", "recompute", "--department", "D1")
    assert result.exit_code == 0, result.output
    assert "grading D1" in result.stderr and "3/3" in result.stderr and "100%" in result.stderr


def test_overrides_kept_are_counted(runner, grading_dept, make_customer, app):
    from core.models import User
    from modules.customers import Customer
    from modules.grading import services
    customer = make_customer(grading_dept.sales)
    with app.test_request_context():
        head = db.session.get(User, grading_dept.head)
        services.set_override(head, db.session.get(Customer, customer), "important", "理由")
        db.session.commit()
    result = runner("grading", "recompute", "--department", "D1")
    assert result.stdout.splitlines() == ["graded 1 customers in 1 department(s): 0 changed, 1 overrides kept"]


def test_bad_department_exits_non_zero_with_one_line(runner, grading_dept, department):
    result = runner("grading", "recompute", "--department", "NOPE")
    assert result.exit_code != 0
    assert len(result.output.strip().splitlines()) == 1 and "NOPE" in result.output
    department("D7")
    result = runner("grading", "recompute", "--department", "D7")
    assert result.exit_code != 0
    assert result.output.strip() == "Error: grading is not enabled for department D7"


def test_nothing_to_do_without_departments_using_grading(runner, department):
    department("D1")
    result = runner("grading", "recompute")
    assert result.exit_code == 0
    assert result.output.strip() == "no department uses grading: nothing to do"
