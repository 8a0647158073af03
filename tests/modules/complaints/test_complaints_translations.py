"""The complaints pages speak Chinese by default and English on request. That every text of the
module has its translation, with the same meaning in every catalogue, is checked for all modules
at once in tests/core/test_translations.py."""


def test_pages_are_in_chinese_by_default_and_english_on_request(client, login_as, cdept):
    login_as(client, "c_head", role="head")
    html = client.get("/complaints/").get_data(as_text=True)
    assert "我的待办投诉" in html and "登记投诉" in html and "类别与处理时限" in html
    html = client.get("/complaints/policy").get_data(as_text=True)
    assert "紧急：受理时限（小时）" in html and "只计工作日" in html
    client.post("/language", data={"locale": "en", "next": "/complaints/"})
    html = client.get("/complaints/").get_data(as_text=True)
    assert "My open complaints" in html and "New complaint" in html
