"""The grading pages speak Chinese by default and English on request. That every text of the
module has its translation, with the same meaning in every catalogue, is checked for all modules
at once in tests/core/test_translations.py."""


def test_pages_are_in_chinese_by_default(client, login_as, grading_dept):
    login_as(client, "g_head")
    html = client.get("/grading/").get_data(as_text=True)
    assert "客户等级分布" in html and "重新计算分级" in html and "符合以下条件的客户为重要客户" in html
    html = client.get("/grading/rules").get_data(as_text=True)
    assert "分级说明" in html and "近12个月交易金额下限（元）" in html
    client.post("/language", data={"locale": "en", "next": "/grading/"})
    html = client.get("/grading/").get_data(as_text=True)
    assert "Distribution of grades" in html and "A customer is important when" in html
