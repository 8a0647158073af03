"""The attachment size limit comes from ARCHIVES_MAX_ATTACHMENT."""
import pytest


@pytest.fixture
def config_overrides():
    return {"ARCHIVES_MAX_ATTACHMENT": 4096}


def test_size_limit_is_configurable(arch, app):
    cid = arch.customer()
    doc_id, _ = arch.document(cid)
    client = arch.client("sales1")
    limit = app.config["ARCHIVES_MAX_ATTACHMENT"]
    exact = arch.pdf_bytes(b"y" * (limit - len(arch.pdf_bytes(b""))))
    assert len(exact) == limit
    arch.post_file(client, doc_id, exact, "exact.pdf")
    assert len(arch.attachment_rows()) == 1
    html = arch.post_file(client, doc_id, exact + b"z", "over.pdf").get_data(as_text=True)
    assert "4 KiB" in html
    assert len(arch.attachment_rows()) == 1 and len(arch.stored_files()) == 1
