"""One wording for a required field, whichever form or module asks."""


def test_required_fields_say_the_same_everywhere(app, client, login_as):
    """WTForms' "This field is required." (DataRequired, InputRequired in any module's form) is
    worded as kehu's own checks word it: 此项为必填项。"""
    login_as(client, "sales9", role="sales", dept="D1")
    response = client.post("/account/password", data={"current": "", "new": "", "confirm": ""})
    page = response.get_data(as_text=True)
    assert response.status_code in (200, 400)
    assert "此项为必填项。" in page and "该字段是必填字段" not in page


def test_admin_forms_show_their_errors_next_to_the_field(app, client, login_as):
    """Creating a department or a user with bad input: the form again (400) with the message
    under the field it is about and what was typed kept, never a bare page or only a banner."""
    import re
    login_as(client, "adm", role="admin", dept=None)
    response = client.post("/admin/departments", data={"code": "有 空格", "name": "华东销售部"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert re.search(r'id="code-error">[^<]+<', page) and 'value="华东销售部"' in page
    response = client.post("/admin/users", data={"username": "wangli", "display_name": "王丽", "password": "123",
                                                 "role": "sales", "department_id": ""})
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'id="department_id-error"' in page and 'value="wangli"' in page and 'value="王丽"' in page
