"""The lifecycle pages speak Chinese by default and English on request. That every text of the
module has its translation, with the same meaning in every catalogue, is checked for all modules
at once in tests/core/test_translations.py."""


def test_pages_are_in_chinese_by_default_and_english_on_request(client, login_as, enable_module):
    enable_module("D1", "lifecycle")
    login_as(client, "sec_t", role="security")
    html = client.get("/lifecycle/").get_data(as_text=True)
    assert "数据生命周期" in html and "到期待销毁" in html and "设置法律保全" in html
    client.post("/language", data={"locale": "en", "next": "/lifecycle/"})
    html = client.get("/lifecycle/").get_data(as_text=True)
    assert "Due for destruction" in html and "Set a legal hold" in html
