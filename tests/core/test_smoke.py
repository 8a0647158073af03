def test_login_page_is_chinese_by_default(client):
    response = client.get("/login")
    assert response.status_code == 200
    assert "登录" in response.get_data(as_text=True) or "Sign in" in response.get_data(as_text=True)


def test_admin_signs_in_and_sees_modules(client, login_as):
    login_as(client, "root", role="admin", dept=None)
    response = client.get("/admin/modules")
    assert response.status_code == 200
