"""The home page is a work queue: counts of what waits for the user, with links."""
import re


def test_a_salesperson_sees_their_records_to_complete(app, client, login_as, make_customer):
    make_customer("sales1", name="张三")  # no phone, no address: incomplete
    make_customer("sales1", name="李四")
    make_customer("other_sales", name="王五")
    login_as(client, "sales1", role="sales", dept="D1")
    page = client.get("/").get_data(as_text=True)
    item = re.search(r'<a class="list-group-item[^"]*" href="([^"]+)">\s*<span>待完善的客户资料</span>\s*'
                     r'<span class="badge[^"]*">(\d+)</span>', page)
    assert item.group(1) == "/customers/incomplete" and item.group(2) == "2"


def test_an_account_with_nothing_to_do_is_told_so(app, client, login_as):
    login_as(client, "root", role="admin", dept=None)
    page = client.get("/").get_data(as_text=True)
    assert 'id="work-queue-empty"' in page and "暂无待办事项" in page
