"""The customer page shows the visits on its timeline and in a panel (customers hooks)."""


def test_timeline_and_panel_on_the_customer_page(vw, days):
    today = vw.today()
    vw.visit(vw.c1, on=today - days(12), channel="onsite", purpose="首次上门", next_contact_on=today - days(5),
             next_step="寄送报价")
    vw.visit(vw.c1, on=today - days(4), channel="video", purpose="方案演示", next_contact_on=today - days(1),
             next_step="确认合同条款", notes="不该出现在客户页面的时间线标题里")
    html = vw.client("sales1").get(f"/customers/{vw.c1}").get_data(as_text=True)
    timeline = html[html.index('id="timeline"'):]
    assert "上门拜访：首次上门" in timeline and "视频会议：方案演示" in timeline
    assert f"下次联系 {(today - days(1)).isoformat()}：确认合同条款" in timeline
    assert timeline.count("timeline-visits") == 2
    panel = html[html.index('id="visits-panel"'):]
    panel = panel[:panel.index("</div>")]
    assert "客户拜访" in html[:html.index('id="visits-panel"')]
    # the latest visit's next contact counts; it has passed: highlighted as overdue
    assert (today - days(1)).isoformat() in panel and "已逾期" in panel and "text-danger" in panel
    assert "确认合同条款" in panel and "寄送报价" not in panel
    assert f"/visits/customers/{vw.c1}/new" in panel and "记录拜访" in panel
    assert panel.index("方案演示") < panel.index("首次上门")  # newest first


def test_panel_without_visits_and_for_a_head(vw, days):
    html = vw.client("sales1").get(f"/customers/{vw.c1}").get_data(as_text=True)
    assert 'id="visits-panel"' in html and "尚未安排下次联系。" in html and "尚无拜访记录。" in html
    vw.visit(vw.c1, next_contact_on=vw.today() + days(2))
    html = vw.client("head1").get(f"/customers/{vw.c1}").get_data(as_text=True)
    panel = html[html.index('id="visits-panel"'):]
    assert (vw.today() + days(2)).isoformat() in panel and "已逾期" not in panel.split("</p>")[0]
