"""One wording for a required field, whichever form or module asks."""


def test_required_fields_say_the_same_everywhere(app, client, login_as):
    """WTForms' "This field is required." (DataRequired, InputRequired in any module's form) is
    worded as kehu's own checks word it: 此项为必填项。"""
    login_as(client, "sales9", role="sales", dept="D1")
    response = client.post("/account/password", data={"current": "", "new": "", "confirm": ""})
    page = response.get_data(as_text=True)
    assert response.status_code in (200, 400)
    assert "此项为必填项。" in page and "该字段是必填字段" not in page
