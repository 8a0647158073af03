"""Installing a module (administrator) and enabling it per department (head), through the admin
page and the CLI, with the `notices` module from its own distribution."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from core import services
from core.app import create_app
from core.audit import AuditEntry
from core.db import db
from core.models import Department, ModuleEnablement, ModuleState, RoleGrant
from tests.conftest import PG_URL, _reset_postgres, make_config

MENU = 'id="menu-notices-list"'


@pytest.fixture
def app(tmp_path, config_overrides):
    """Like conftest's app, but only the always-installed modules are installed: `notices` waits
    for the administrator."""
    if PG_URL:
        _reset_postgres(PG_URL)
    app = create_app(make_config(tmp_path, **config_overrides))
    with app.app_context():
        db.create_all()
        services.grant_defaults("core")
        for name, info in app.extensions["kehu.modules"].items():
            if info.manifest.required:
                services.install_module("test", name)
        db.session.commit()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def entries(app, action):
    with app.app_context():
        return db.session.execute(select(AuditEntry).where(AuditEntry.action == action)
                                  .order_by(AuditEntry.id)).scalars().all()


def dept_id(app, code):
    with app.app_context():
        return db.session.execute(select(Department.id).where(Department.code == code)).scalar_one()


def enabled_in(app, name):
    with app.app_context():
        return set(db.session.execute(
            select(Department.code).join(ModuleEnablement, ModuleEnablement.department_id == Department.id)
            .where(ModuleEnablement.module == name)).scalars())


def installed(app, name):
    with app.app_context():
        return db.session.get(ModuleState, name) is not None


@pytest.fixture
def people(app, client, login_as, department):
    """An administrator, the head of D1, and a sales user in each of D1 and D2, each signed in."""
    department("D1")
    department("D2")
    return {
        "admin": login_as(client, "root", role="admin", dept=None),
        "head1": login_as(app.test_client(), "head1", role="head", dept="D1"),
        "sales1": login_as(app.test_client(), "sales1", role="sales", dept="D1"),
        "sales2": login_as(app.test_client(), "sales2", role="sales", dept="D2"),
    }


def toggle(client, app, action, code, name="notices"):
    return client.post(f"/admin/modules/{name}/{action}", data={"department_id": dept_id(app, code)})


def test_install_then_enable_for_one_department(app, people):
    admin, head1, sales1, sales2 = people["admin"], people["head1"], people["sales1"], people["sales2"]
    assert not installed(app, "notices")
    for user in (sales1, sales2):
        assert user.get("/notices/").status_code == 404
        assert MENU not in user.get("/").get_data(as_text=True)

    page = admin.get("/admin/modules").get_data(as_text=True)
    assert 'action="/admin/modules/notices/install"' in page
    assert admin.post("/admin/modules/notices/install").status_code == 302
    assert installed(app, "notices")
    with app.app_context():  # its default grants come with it
        granted = set(db.session.execute(select(RoleGrant.role).where(RoleGrant.permission == "notices.view"))
                      .scalars())
    assert granted == {"head", "sales", "service"}
    assert 'action="/admin/modules/notices/install"' not in admin.get("/admin/modules").get_data(as_text=True)
    # installed, but no department uses it yet
    assert sales1.get("/notices/").status_code == 404

    page = head1.get("/admin/modules").get_data(as_text=True)
    assert 'action="/admin/modules/notices/enable"' in page
    assert "部门D2" not in page  # a head is offered only their own department
    assert toggle(head1, app, "enable", "D1").status_code == 302
    assert enabled_in(app, "notices") == {"D1"}

    assert sales1.get("/notices/").status_code == 200
    assert MENU in sales1.get("/").get_data(as_text=True)
    assert sales2.get("/notices/").status_code == 404
    assert sales2.get("/notices/new").status_code == 404
    assert MENU not in sales2.get("/").get_data(as_text=True)

    install = entries(app, "core.module.installed")[-1]
    assert (install.actor, install.target_type, install.target_id) == ("root", "module", "notices")
    enable = entries(app, "core.module.enabled")[-1]
    assert (enable.actor, enable.target_id, enable.details_dict["department"]) == ("head1", "notices", "D1")


def test_install_is_for_administrators_only(app, people):
    assert people["head1"].post("/admin/modules/notices/install").status_code == 403
    assert not installed(app, "notices")
    assert 'action="/admin/modules/notices/install"' not in people["head1"].get("/admin/modules").get_data(
        as_text=True)


def test_a_head_cannot_enable_for_another_department(app, people):
    people["admin"].post("/admin/modules/notices/install")
    response = toggle(people["head1"], app, "enable", "D2")
    assert response.status_code == 302
    assert enabled_in(app, "notices") == set()
    assert people["sales2"].get("/notices/").status_code == 404
    assert entries(app, "core.module.enabled") == []
    # nor disable it there after the administrator enabled it
    assert toggle(people["admin"], app, "enable", "D2").status_code == 302
    toggle(people["head1"], app, "disable", "D2")
    assert enabled_in(app, "notices") == {"D2"}
    assert people["sales2"].get("/notices/").status_code == 200


def test_staff_cannot_enable_modules(app, people):
    people["admin"].post("/admin/modules/notices/install")
    assert toggle(people["sales1"], app, "enable", "D1").status_code == 403
    assert enabled_in(app, "notices") == set()


def test_enabling_a_module_that_is_not_installed_is_refused(app, people):
    toggle(people["admin"], app, "enable", "D1")
    assert enabled_in(app, "notices") == set()
    assert people["sales1"].get("/notices/").status_code == 404


def test_disabling_keeps_the_data(app, people):
    admin, head1, sales1 = people["admin"], people["head1"], people["sales1"]
    admin.post("/admin/modules/notices/install")
    toggle(head1, app, "enable", "D1")
    response = head1.post("/notices/new", data={"title": "周会改到周四", "body": "下午三点，三楼会议室。"})
    assert response.status_code == 302
    assert "周会改到周四" in sales1.get("/notices/").get_data(as_text=True)

    assert toggle(head1, app, "disable", "D1").status_code == 302
    assert enabled_in(app, "notices") == set()
    assert sales1.get("/notices/").status_code == 404
    assert head1.get("/notices/new").status_code == 404
    assert MENU not in sales1.get("/").get_data(as_text=True)

    toggle(head1, app, "enable", "D1")
    page = sales1.get("/notices/").get_data(as_text=True)
    assert "周会改到周四" in page and "下午三点，三楼会议室。" in page

    created = entries(app, "notices.notice.created")
    assert [(e.actor, e.target_type) for e in created] == [("head1", "notices_notice")]
    assert "周会" not in created[0].details  # field names, never the text
    assert [e.actor for e in entries(app, "core.module.disabled")] == ["head1"]
    assert [e.actor for e in entries(app, "core.module.enabled")] == ["head1", "head1"]


# --- the module itself ------------------------------------------------------------------------------

@pytest.fixture
def notices_on(app, people, enable_module):
    with app.app_context():
        services.install_module("test", "notices")
        db.session.commit()
    enable_module("D1", "notices")
    enable_module("D2", "notices")
    return people


def test_notices_are_listed_newest_first_and_only_in_their_department(app, notices_on):
    head1 = notices_on["head1"]
    for title in ("第一条", "第二条", "第三条"):
        head1.post("/notices/new", data={"title": title, "body": "正文"})
    page = notices_on["sales1"].get("/notices/").get_data(as_text=True)
    assert page.index("第三条") < page.index("第二条") < page.index("第一条")
    assert "第一条" not in notices_on["sales2"].get("/notices/").get_data(as_text=True)


def test_only_heads_may_post_notices(app, notices_on):
    sales1 = notices_on["sales1"]
    assert 'id="notices-new"' not in sales1.get("/notices/").get_data(as_text=True)
    assert sales1.get("/notices/new").status_code == 403
    assert sales1.post("/notices/new", data={"title": "x", "body": "y"}).status_code == 403
    assert 'id="notices-new"' in notices_on["head1"].get("/notices/").get_data(as_text=True)
    assert entries(app, "notices.notice.created") == []


def test_notice_form_enforces_length_limits(app, notices_on):
    head1 = notices_on["head1"]
    for data in ({"title": "t" * 201, "body": "b"}, {"title": "t", "body": "b" * 5001},
                 {"title": "", "body": "b"}, {"title": "t", "body": "   "}):
        response = head1.post("/notices/new", data=data)
        assert response.status_code == 200, data
        assert "invalid-feedback" in response.get_data(as_text=True) or "alert-danger" in response.get_data(
            as_text=True)
    assert head1.post("/notices/new", data={"title": "t" * 200, "body": "b" * 5000}).status_code == 302
    assert len(entries(app, "notices.notice.created")) == 1


def test_notice_text_is_escaped(app, notices_on):
    notices_on["head1"].post("/notices/new", data={"title": "<script>alert(1)</script>", "body": "<b>x</b>"})
    page = notices_on["sales1"].get("/notices/").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "<b>x</b>" not in page


# --- the CLI ---------------------------------------------------------------------------------------

def one_line_error(result, *words):
    assert result.exit_code != 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: ")
    for word in words:
        assert word in lines[0]


@pytest.fixture
def english(monkeypatch):
    monkeypatch.setenv("KEHU_LOCALE", "en")  # the CLI's language: messages below are compared as text


def test_cli_install_enable_disable(app, runner, department, english):
    department("D1")
    assert runner("modules", "install", "notices").output.strip() == "installed: notices"
    assert runner("modules", "install", "notices").output.strip() == "notices is installed already"
    result = runner("modules", "enable", "notices", "--department", "D1")
    assert (result.exit_code, result.output.strip()) == (0, "notices enabled for D1")
    assert enabled_in(app, "notices") == {"D1"}
    result = runner("modules", "disable", "notices", "--department", "D1")
    assert (result.exit_code, result.output.strip()) == (0, "notices disabled for D1")
    assert enabled_in(app, "notices") == set()
    assert [e.actor.startswith("cli:") for e in entries(app, "core.module.enabled")] == [True]
    assert len(entries(app, "core.module.disabled")) == 1


def test_cli_refuses_bad_names_with_one_line(app, runner, department, english):
    department("D1")
    one_line_error(runner("modules", "enable", "notices", "--department", "D1"), "notices", "not installed")
    one_line_error(runner("modules", "install", "nosuch"), "nosuch")
    one_line_error(runner("modules", "install", "../../etc"), "../../etc")
    one_line_error(runner("modules", "enable", "nosuch", "--department", "D1"), "nosuch")
    one_line_error(runner("modules", "disable", "nosuch", "--department", "D1"), "nosuch")
    runner("modules", "install", "notices")
    one_line_error(runner("modules", "enable", "notices", "--department", "NOPE"), "NOPE")
    one_line_error(runner("modules", "disable", "notices", "--department", "NOPE"), "NOPE")
    assert enabled_in(app, "notices") == set()
    assert entries(app, "core.module.enabled") == []


def test_heads_see_switches_in_words_and_confirm_before_disabling(app, people):
    """One switch per department with its state in words; the developer columns (依赖, 来源, the
    module's code name) only for the administrator; disabling asks first and changes nothing
    until confirmed."""
    admin, head1 = people["admin"], people["head1"]
    assert admin.post("/admin/modules/notices/install").status_code == 302
    page = head1.get("/admin/modules").get_data(as_text=True)
    assert "未启用" in page and "已启用" not in page.split('id="module-notices"')[1].split("</tr>")[0]
    assert "依赖" not in page and "来源" not in page and "entry point" not in page
    admin_page = admin.get("/admin/modules").get_data(as_text=True)
    assert "依赖" in admin_page and "来源" in admin_page and "entry point" in admin_page
    assert toggle(head1, app, "enable", "D1").status_code == 302
    row = head1.get("/admin/modules").get_data(as_text=True).split('id="module-notices"')[1].split("</tr>")[0]
    assert "已启用" in row
    confirm_url = f"/admin/modules/notices/disable?department_id={dept_id(app, 'D1')}"
    assert f'href="{confirm_url}"' in row.replace("&amp;", "&")
    confirm = head1.get(confirm_url)
    assert confirm.status_code == 200
    assert 'id="confirm-disable"' in confirm.get_data(as_text=True)
    assert enabled_in(app, "notices") == {"D1"}  # asking is not disabling
    assert head1.get(f"/admin/modules/notices/disable?department_id={dept_id(app, 'D2')}").status_code == 404
    assert toggle(head1, app, "disable", "D1").status_code == 302
    assert enabled_in(app, "notices") == set()
