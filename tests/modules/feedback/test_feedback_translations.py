"""The feedback pages speak Chinese by default and English on request. That every text of the
module has its translation, with the same meaning in every catalogue, is checked for all modules
at once in tests/core/test_translations.py."""


def test_pages_are_in_chinese_by_default_and_english_on_request(client, login_as, fdept):
    login_as(client, "f_head", role="head")
    html = client.get("/feedback/").get_data(as_text=True)
    assert "反馈表模板" in html and "新建模板" in html and "最近填写的反馈表" in html
    client.post("/language", data={"locale": "en", "next": "/feedback/"})
    html = client.get("/feedback/").get_data(as_text=True)
    assert "Feedback templates" in html and "New template" in html
