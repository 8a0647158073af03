"""Logging, editing and deleting a visit through the pages (errors next to the fields in Chinese,
nothing saved on error, every change audited with field names only); the visit lists."""
import json

from sqlalchemy import select

from core.db import db


def form(**values):
    data = {"visited_on": "", "channel": "onsite", "purpose": "年度合作回顾", "notes": "客户希望增加培训名额",
            "next_step": "发送培训方案", "next_contact_on": ""}
    data.update(values)
    return data


def visit_ids(app):
    from modules.visits.models import Visit
    with app.app_context():
        return db.session.scalars(select(Visit.id).order_by(Visit.id)).all()


def error_of(html, field):
    """The error messages shown next to a form field."""
    import re
    return re.findall(rf'id="{field}-error">([^<]*)<', html)


def test_the_form_opens_with_today_in_the_company_zone(vw):
    html = vw.client("sales1").get(f"/visits/customers/{vw.c1}/new").get_data(as_text=True)
    assert "记录拜访" in html and "拜访目的" in html and "上门拜访" in html and "视频会议" in html
    assert f'value="{vw.today().isoformat()}"' in html


def test_errors_are_shown_next_to_the_fields_in_chinese_and_nothing_is_saved(vw, days):
    client = vw.client("sales1")
    today = vw.today()
    url = f"/visits/customers/{vw.c1}/new"
    response = client.post(url, data=form(visited_on="", purpose="  ", channel=""))
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert error_of(html, "visited_on") == ["请按 2026-03-31 的格式填写日期。"]
    assert error_of(html, "purpose") == ["请填写拜访目的。"]
    assert error_of(html, "channel") == ["请选择联系方式。"]
    assert "客户希望增加培训名额" in html  # what was typed is kept

    response = client.post(url, data=form(visited_on=(today + days(1)).isoformat(),
                                          next_contact_on=(today - days(1)).isoformat()))
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert error_of(html, "visited_on") == ["拜访日期不能晚于今天。"]

    response = client.post(url, data=form(visited_on=today.isoformat(),
                                          next_contact_on=(today - days(1)).isoformat()))
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert error_of(html, "next_contact_on") == ["下次联系日期不能早于今天。"]

    response = client.post(url, data=form(visited_on="2026-13-45", channel="bogus", purpose="x" * 101,
                                          notes="a\x00b", next_contact_on="tomorrow"))
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert error_of(html, "purpose") == ["字段长度不能超过 100 个字符。"]
    assert error_of(html, "channel") == ["不是有效的选择。"]
    assert error_of(html, "next_contact_on") == ["不是有效的日期值。"]
    assert "控制字符" in error_of(html, "notes")[0]
    assert "请按 2026-03-31 的格式填写日期。" in error_of(html, "visited_on")

    assert visit_ids(vw.app) == []
    assert vw.audit("visits.") == []


def test_a_visit_is_logged_audited_with_field_names_and_shown(vw, days):
    client = vw.client("sales1")
    today = vw.today()
    response = client.post(f"/visits/customers/{vw.c1}/new", data=form(
        visited_on=today.isoformat(), next_contact_on=(today + days(3)).isoformat()))
    assert response.status_code == 302
    (visit_id,) = visit_ids(vw.app)
    assert response.headers["Location"].endswith(f"/visits/{visit_id}")
    row = vw.get_visit(visit_id)
    assert (row.purpose, row.notes, row.channel, row.visited_on) == ("年度合作回顾", "客户希望增加培训名额", "onsite", today)
    assert row.next_contact_on == today + days(3) and row.owner_id == vw.ids["sales1"]

    (entry,) = vw.audit("visits.")
    assert entry.action == "visits.visit.created" and entry.target_id == str(visit_id)
    details = json.loads(entry.details)
    assert details["fields"] == ["visited_on", "channel", "purpose", "notes", "next_step", "next_contact_on"]
    assert details["customer_id"] == vw.c1

    html = client.get(f"/visits/{visit_id}").get_data(as_text=True)
    assert "客户希望增加培训名额" in html and "发送培训方案" in html and "上门拜访" in html
    assert 'id="visit-edit"' in html and 'id="visit-delete"' in html and 'id="visit-report"' in html


def test_an_edit_audits_the_changed_field_names_only(vw, days):
    visit_id = vw.visit(vw.c1, purpose="初次拜访", notes="旧的记录")
    client = vw.client("sales1")
    page = client.get(f"/visits/{visit_id}/edit").get_data(as_text=True)
    assert "旧的记录" in page and "初次拜访" in page
    today = vw.today()
    response = client.post(f"/visits/{visit_id}/edit", data=form(
        visited_on=today.isoformat(), channel="phone", purpose="初次拜访", notes="新的记录", next_step="",
        version="1"))
    assert response.status_code == 302
    row = vw.get_visit(visit_id)
    assert row.notes == "新的记录" and row.version == 2
    entry = vw.audit("visits.visit.updated")[-1]
    assert json.loads(entry.details)["fields"] == ["notes"]
    assert "新的记录" not in entry.details and "旧的记录" not in entry.details

    # a form opened before that change is stale: refused, nothing changed
    response = client.post(f"/visits/{visit_id}/edit", data=form(
        visited_on=today.isoformat(), channel="phone", purpose="改了目的", notes="新的记录", version="1"))
    assert response.status_code == 400 and "其他人刚刚修改了这条拜访记录" in response.get_data(as_text=True)
    assert vw.get_visit(visit_id).purpose == "初次拜访"


def test_a_passed_next_contact_date_may_stay_when_editing(vw, days):
    today = vw.today()
    visit_id = vw.visit(vw.c1, on=today - days(10), next_contact_on=today - days(3))
    client = vw.client("sales1")
    response = client.post(f"/visits/{visit_id}/edit", data=form(
        visited_on=(today - days(10)).isoformat(), purpose="补记", next_contact_on=(today - days(3)).isoformat(),
        version="1"))
    assert response.status_code == 302
    row = vw.get_visit(visit_id)
    assert row.purpose == "补记" and row.version == 2  # one change, one new version
    response = client.post(f"/visits/{visit_id}/edit", data=form(
        visited_on=(today - days(10)).isoformat(), purpose="补记", next_contact_on=(today - days(2)).isoformat(),
        version="2"))
    assert response.status_code == 400
    assert error_of(response.get_data(as_text=True), "next_contact_on") == ["下次联系日期不能早于今天。"]


def test_delete_is_a_post_and_audited(vw):
    visit_id = vw.visit(vw.c1, notes="要删除的记录")
    client = vw.client("sales1")
    assert client.get(f"/visits/{visit_id}/delete").status_code == 405
    response = client.post(f"/visits/{visit_id}/delete")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/visits/customers/{vw.c1}")
    assert vw.get_visit(visit_id) is None
    entry = vw.audit("visits.visit.deleted")[-1]
    assert entry.target_id == str(visit_id) and "要删除的记录" not in entry.details


def test_the_head_may_change_the_departments_visits_a_colleague_may_not(vw):
    visit_id = vw.visit(vw.c1, purpose="部门内")
    head = vw.client("head1")
    assert 'id="visit-edit"' in head.get(f"/visits/{visit_id}").get_data(as_text=True)
    assert head.post(f"/visits/{visit_id}/delete").status_code == 302
    assert vw.get_visit(visit_id) is None
    # a colleague who may see the customer (it is shared with him) but did not log the visit
    visit_id = vw.visit(vw.c1, purpose="他人的记录")
    owner = vw.client("sales1")
    assert owner.post(f"/customers/{vw.c1}/shares", data={"user_id": vw.ids["sales1b"]}).status_code == 302
    colleague = vw.client("sales1b")
    page = colleague.get(f"/visits/{visit_id}")
    assert page.status_code == 200 and 'id="visit-edit"' not in page.get_data(as_text=True)
    assert colleague.get(f"/visits/{visit_id}/edit").status_code == 403
    assert colleague.post(f"/visits/{visit_id}/delete").status_code == 403
    assert vw.get_visit(visit_id).purpose == "他人的记录"
    assert vw.audit("core.access.denied")[-1].details_dict["permission"] == "visits.log"


def test_my_visits_list_with_filters(vw, days):
    today = vw.today()
    vw.visit(vw.c1, purpose="电话回访", channel="phone", on=today - days(20))
    vw.visit(vw.c1, purpose="微信沟通", channel="wechat", on=today - days(2))
    vw.visit(vw.c1, actor="head1", purpose="经理拜访", channel="onsite")
    client = vw.client("sales1")
    html = client.get("/visits/").get_data(as_text=True)
    assert "电话回访" in html and "微信沟通" in html and "经理拜访" not in html
    assert "共 2 条拜访记录" in html
    html = client.get("/visits/?channel=wechat").get_data(as_text=True)
    assert "微信沟通" in html and "电话回访" not in html
    html = client.get(f"/visits/?from={(today - days(30)).isoformat()}&to={(today - days(10)).isoformat()}").get_data(as_text=True)
    assert "电话回访" in html and "微信沟通" not in html
    html = client.get("/visits/?from=not-a-date").get_data(as_text=True)
    assert 'id="visits-bad-date"' in html and "共 2 条拜访记录" in html
    assert 'name="who"' not in html  # only a head may switch to the department
    head = vw.client("head1")
    html = head.get("/visits/?who=department").get_data(as_text=True)
    assert "电话回访" in html and "经理拜访" in html and "记录人" in html


def test_the_menu_shows_the_module(vw):
    html = vw.client("sales1").get("/").get_data(as_text=True)
    assert 'id="menu-visits-index"' in html and "客户拜访" in html and 'id="menu-visits-due"' in html
