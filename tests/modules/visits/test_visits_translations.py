"""The visits pages speak Chinese by default and English on request. That every text of the
module has its translation, with the same meaning in every catalogue, is checked for all modules
at once in tests/core/test_translations.py."""


def test_pages_are_in_chinese_by_default_and_english_on_request(vw):
    client = vw.client("sales1")
    html = client.get("/visits/").get_data(as_text=True)
    assert "客户拜访" in html and "联系方式" in html and "起始日期" in html
    html = client.get("/visits/due").get_data(as_text=True)
    assert "已逾期" in html and "今天联系" in html and "未来 7 天" in html
    client.post("/language", data={"locale": "en", "next": "/visits/"})
    html = client.get("/visits/due").get_data(as_text=True)
    assert "Overdue" in html and "Due today" in html and "In the next 7 days" in html
    html = client.get(f"/visits/customers/{vw.c1}/new").get_data(as_text=True)
    assert "Way of contact" in html and "On-site visit" in html and "Purpose of the contact" in html
