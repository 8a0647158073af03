"""The security self-check: each finding on a prepared instance, the page and `kehu selfcheck`
(exit 1 when something fails)."""
import json
from datetime import date, timedelta

import pytest

from core import selfcheck
from core.db import db
from core.models import ModuleState, RoleGrant, User, utcnow
from tests.conftest import both_suites


def _findings(app, secure=False):
    base = "https://localhost/" if secure else "http://localhost/"
    with app.test_request_context(base_url=base):
        return {f.key: f for f in selfcheck.run()}


@pytest.fixture
def tidy(app, ov):
    """An instance where everything core checks is in order but backups (made in the test)."""
    from modules.oversight import services
    with app.test_request_context():
        head = ov.user("head1")
        services.record_review(ov.user("security1"), user_id=head.id, reviewed_on=date.today(),
                               expires_on=date.today() + timedelta(days=30), note="")
        db.session.commit()
    return ov


def test_dormant_accounts(app, tidy):
    assert _findings(app)["core.dormant"].status == "ok"
    with app.app_context():
        user = db.session.query(User).filter_by(username="sales1").one()
        user.created_at = utcnow() - timedelta(days=200)
        db.session.commit()
    finding = _findings(app)["core.dormant"]
    assert finding.status == "fail" and "sales1" in finding.items and finding.action
    app.config["SELFCHECK_DORMANT_DAYS"] = 365
    assert _findings(app)["core.dormant"].status == "ok"


def test_grants_beyond_the_role_defaults(app, tidy):
    assert _findings(app)["core.grants"].status == "ok"
    with app.app_context():
        db.session.add(RoleGrant(role="sales", permission="customers.import"))
        db.session.commit()
    finding = _findings(app)["core.grants"]
    assert finding.status == "warning" and finding.items == ("sales: customers.import (sales1)",)


def test_reveal_grants_without_a_current_confidentiality_review(app, ov):
    finding = _findings(app)["oversight.reviews"]
    assert finding.status == "fail" and finding.items == ("head1",) and "保密审查" in finding.action
    from modules.oversight import services
    with app.test_request_context():
        services.record_review(ov.user("security1"), user_id=ov.user("head1").id,
                               reviewed_on=date.today() - timedelta(days=400),
                               expires_on=date.today() - timedelta(days=35), note="")
        db.session.commit()
    assert _findings(app)["oversight.reviews"].status == "fail"  # expired
    with app.test_request_context():
        services.record_review(ov.user("security1"), user_id=ov.user("head1").id, reviewed_on=date.today(),
                               expires_on=date.today() + timedelta(days=365), note="")
        db.session.commit()
    assert _findings(app)["oversight.reviews"].status == "ok"


def test_master_key_age_and_rotation(app, tidy, runner):
    finding = _findings(app)["core.keys"]
    assert finding.status == "ok" and "从未轮换" in finding.detail
    app.config["SELFCHECK_KEY_MAX_AGE_DAYS"] = -1
    finding = _findings(app)["core.keys"]
    assert finding.status == "warning" and "kehu keys rotate" in finding.action
    result = runner("keys", "rotate")
    assert result.exit_code == 0, result.output
    app.config["SELFCHECK_KEY_MAX_AGE_DAYS"] = 365
    finding = _findings(app)["core.keys"]
    assert finding.status == "ok" and "0 天前轮换" in finding.detail


def test_backup_age_and_test_restore(app, tidy, runner, tmp_path):
    findings = _findings(app)
    assert findings["core.backup"].status == "fail" and "kehu backup" in findings["core.backup"].action
    assert findings["core.restore_test"].status == "warning"
    archive = tmp_path / "b.tar.gz"
    assert runner("backup", "-q", str(archive)).exit_code == 0
    findings = _findings(app)
    assert findings["core.backup"].status == "ok" and findings["core.restore_test"].status == "warning"
    result = runner("restore", "--test", "-q", str(archive))
    assert result.exit_code == 0 and "test-restore" in result.output and "not changed" in result.output
    assert _findings(app)["core.restore_test"].status == "ok"
    # a damaged archive fails the test-restore with one line and records nothing
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(archive.read_bytes()[:200])
    result = runner("restore", "--test", "-q", str(broken))
    assert result.exit_code != 0 and "Error:" in result.output and len(result.output.strip().splitlines()) == 1
    with app.app_context():
        from core.audit import AuditEntry
        assert db.session.query(AuditEntry).filter_by(action="core.backup.test_restored").count() == 1
    # old backups
    app.config["SELFCHECK_BACKUP_MAX_AGE_HOURS"] = -1
    app.config["SELFCHECK_RESTORE_TEST_DAYS"] = -1
    findings = _findings(app)
    assert findings["core.backup"].status == "fail" and findings["core.restore_test"].status == "warning"


def test_audit_chain_status(app, tidy):
    assert _findings(app)["core.audit"].status == "ok"
    checkpoint = app.config["AUDIT_CHECKPOINT_FILE"]
    with open(checkpoint, "w") as out:
        json.dump({"id": 1, "hash": "0" * 64, "at": "x", "mac": "forged"}, out)
    finding = _findings(app)["core.audit"]
    assert finding.status == "fail" and finding.action


def test_modules_with_pending_upgrades(app, tidy):
    assert _findings(app)["core.modules"].status == "ok"
    with app.app_context():
        db.session.get(ModuleState, "visits").version = "0.9.0"
        db.session.commit()
    finding = _findings(app)["core.modules"]
    assert finding.status == "warning" and finding.items[0].startswith("visits") and "kehu modules upgrade" in finding.action


def test_https_and_secure_cookie(app, tidy):
    assert _findings(app)["core.https"].status == "warning"
    assert _findings(app, secure=True)["core.https"].status == "ok"
    app.config["SESSION_COOKIE_HTTPONLY"] = False
    assert _findings(app, secure=True)["core.https"].status == "fail"


def test_pdf_printing(app, tidy, monkeypatch):
    """The start-up checks of printing are a finding (no longer logged by every `kehu` command)."""
    from core import pdf
    assert _findings(app)["core.pdf"].status == "ok"  # fonts-noto-cjk and libharfbuzz-subset0 here
    missing = "pdf: CJK font 'Noto Sans CJK SC' not found (install Debian package fonts-noto-cjk); …"
    monkeypatch.setattr(pdf, "check", lambda: [missing])
    finding = _findings(app)["core.pdf"]
    assert finding.status == "warning" and finding.items == (missing,) and finding.action


def test_open_incidents_and_overdue_subject_requests(app, tidy):
    findings = _findings(app)
    assert findings["incidents.open"].status == "ok" and findings["lifecycle.requests"].status == "ok"
    from modules.customers.models import Customer
    from modules.incidents.services import report
    from modules.lifecycle import requests
    with app.test_request_context():
        security = tidy.user("security1")
        incident = report(security, title="邮件误发", noticed_at=utcnow(), how_found="同事报告", description="…")
        requests.create(security, db.session.get(Customer, tidy.customer), "copy",
                        received_on=date.today() - timedelta(days=60))
        db.session.commit()
        number = incident.number
    findings = _findings(app)
    assert findings["incidents.open"].status == "warning" and findings["incidents.open"].items == (number,)
    assert findings["lifecycle.requests"].status == "fail" and "15" in findings["lifecycle.requests"].action


def test_the_page_and_the_command_show_the_same_findings(app, tidy, runner):
    security = tidy.client("security1")
    page = security.get("/oversight/selfcheck").get_data(as_text=True)
    assert "安全自查" in page and 'id="finding-core-backup"' in page and "table-danger" in page
    assert "处理建议" in page and "kehu backup" in page
    assert tidy.client("sales1").get("/oversight/selfcheck").status_code == 403
    result = runner("selfcheck")
    assert result.exit_code == 1
    assert "[FAIL] core.backup" in result.output and "[OK] core.audit" in result.output
    assert "[OK] oversight.reviews" in result.output and "-> " in result.output
    app.config["SELFCHECK_RESTORE_TEST_DAYS"] = 90


def test_the_command_passes_when_nothing_fails(app, tidy, runner, tmp_path):
    assert runner("backup", "-q", str(tmp_path / "b.tar.gz")).exit_code == 0
    result = runner("selfcheck")
    assert result.exit_code == 0, result.output
    assert "self-check passed" in result.output and "[WARNING] core.https" in result.output


@both_suites
def test_the_cipher_suite_in_use_is_named(app, crypto_suite):
    finding = _findings(app)["core.suite"]
    expected = {"aes": "AES-256-GCM + HMAC-SHA256", "sm": "国密 SM4-GCM + HMAC-SM3"}[crypto_suite]
    assert finding.status == "ok" and expected in finding.detail
