"""The incidents pages speak Chinese by default and English on request. That every text of the
module has its translation, with the same meaning in every catalogue, is checked for all modules
at once in tests/core/test_translations.py."""


def test_pages_are_in_chinese_by_default(inc):
    incident_id = inc.report()
    sec = inc.security()
    html = sec.get(f"/incidents/{incident_id}").get_data(as_text=True)
    assert "研判" in html and "审计日志证据" in html and "已报告" in html
    sec.post("/language", data={"locale": "en", "next": "/incidents/"})
    html = sec.get(f"/incidents/{incident_id}").get_data(as_text=True)
    assert "Evidence from the audit trail" in html and "Reported" in html
