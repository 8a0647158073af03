"""With CSRF protection on (as in production), archive forms carry the token and posts without it
are refused."""
import re

import pytest


@pytest.fixture
def config_overrides():
    return {"WTF_CSRF_ENABLED": True}


def token(html):
    match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html)
    return match.group(1) if match else None


def test_upload_and_delete_need_the_csrf_token(arch, app):
    cid = arch.customer()
    doc_id, _ = arch.document(cid)
    client = app.test_client()
    page = client.get("/login")
    client.post("/login", data={"username": "sales1", "password": "Correct-horse-42",
                                "csrf_token": token(page.get_data(as_text=True))})
    html = client.get(f"/archives/documents/{doc_id}").get_data(as_text=True)
    assert 'id="archives-upload"' in html
    forged = client.post(f"/archives/documents/{doc_id}/attachments",
                         data={"attachment": arch.upload(arch.pdf_bytes(), "a.pdf")},
                         content_type="multipart/form-data")
    assert forged.status_code == 400 and arch.stored_files() == []
    ok = client.post(f"/archives/documents/{doc_id}/attachments",
                     data={"attachment": arch.upload(arch.pdf_bytes(), "a.pdf"), "csrf_token": token(html)},
                     content_type="multipart/form-data")
    assert ok.status_code == 302 and len(arch.stored_files()) == 1
    assert client.post(f"/archives/documents/{doc_id}/delete").status_code == 400
    assert client.get(f"/archives/documents/{doc_id}").status_code == 200
