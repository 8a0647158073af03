"""The module as a whole: contract, enablement per department, and what it adds to the customer
register through hooks (panel, timeline, handover)."""
from flask import render_template

from core import access, hooks
from core.db import db
from core.models import Department


def test_manifest_and_contract(app):
    import modules.archives as archives
    info = app.extensions["kehu.modules"]["archives"]
    assert archives.manifest.depends == ("customers",)
    assert archives.manifest.title == {"zh_CN": "客户档案", "en": "Customer archives"}
    assert info.contributions["blueprints"] == ["archives"]
    assert set(info.contributions["hooks"]) == {"customers.panels", "customers.timeline", "customers.handover",
                                                "core.work_items", "customers.rekey", "core.demo"}
    for endpoint, view in app.view_functions.items():
        if endpoint.startswith("archives."):
            assert getattr(view, "kehu_permission", "").startswith("archives."), endpoint
    rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("archives.")]
    assert rules and all(r.rule.startswith("/archives/") for r in rules)


def test_disabled_module_answers_404_and_leaves_the_customer_register_working(arch, app, enable_module):
    cid = arch.customer(owner="sales3", name="赵六")  # D3 does not use the archives
    client = arch.client("sales3")
    for url in ("/archives/", f"/archives/{cid}", "/archives/incomplete", "/archives/requests",
                f"/archives/{cid}/form.pdf", "/archives/overdue"):
        assert client.get(url).status_code == 404, url
    home = client.get("/").get_data(as_text=True)
    assert 'id="menu-archives-index"' not in home
    assert client.get("/customers/").status_code == 200
    disabled_page = client.get(f"/customers/{cid}")
    assert disabled_page.status_code != 500
    assert 'id="archives-count"' not in disabled_page.get_data(as_text=True)

    enable_module("D3", "archives")
    arch.document(cid, actor="sales3")
    assert client.get(f"/archives/{cid}").status_code == 200
    assert 'id="menu-archives-index"' in client.get("/").get_data(as_text=True)
    enabled_page = client.get(f"/customers/{cid}")
    assert enabled_page.status_code == disabled_page.status_code
    if enabled_page.status_code == 200:  # the customer page renders the panels of enabled modules
        assert 'id="archives-count"' in enabled_page.get_data(as_text=True)

    from core import services as core_services
    with app.app_context():
        core_services.disable_module("test", "archives", db.session.query(Department).filter_by(code="D3").one())
        db.session.commit()
    assert client.get(f"/archives/{cid}").status_code == 404
    assert client.get(f"/customers/{cid}").status_code == disabled_page.status_code
    enable_module("D3", "archives")  # data stays while disabled
    assert "合同" in client.get(f"/archives/{cid}").get_data(as_text=True)


def test_panel_and_timeline_hooks(arch, app):
    from modules.customers import Customer
    cid = arch.customer(owner="sales1")
    _, number = arch.document(cid, doc_type="contract", title="框架协议")
    with app.test_request_context():
        actor = arch.user("sales1")
        customer = db.session.get(Customer, cid)
        panels = [p for module, result in hooks.call("customers.panels", customer, actor,
                                                      department_id=actor.department_id)
                  if module == "archives" for p in result]
        assert len(panels) == 1
        panel = panels[0]
        assert panel.module == "archives" and panel.context["count"] == 1
        html = render_template(panel.template, customer=customer, panel=panel, actor=actor, context=panel.context)
        assert 'id="archives-count">1<' in html and f"/archives/{cid}" in html and "form.pdf" in html
        events = [e for module, result in hooks.call("customers.timeline", customer, actor,
                                                      department_id=actor.department_id)
                  if module == "archives" for e in result]
        assert [e.detail for e in events] == ["框架协议"] and number in events[0].title
        # D3 has not enabled the archives: nothing is contributed there
        assert not [m for m, _ in hooks.call("customers.panels", customer, actor, department_id=None)
                    if m == "archives"]
        # without archives.view (the security officer's role), no panel
        from core import services as core_services
        outsider = core_services.create_user("test", "sec1", "Correct-horse-42", "security")
        assert [r for m, r in hooks.call("customers.panels", customer, outsider,
                                         department_id=actor.department_id) if m == "archives"] == [[]]
        # nor timeline events; the customer's own copy of their data (actor None) has them all
        assert [r for m, r in hooks.call("customers.timeline", customer, outsider,
                                         department_id=actor.department_id) if m == "archives"] == [[]]
        assert [len(r) for m, r in hooks.call("customers.timeline", customer, None,
                                              department_id=actor.department_id) if m == "archives"] == [1]


def test_handover_hook_reassigns_the_keeper(arch, app):
    from modules.archives.models import Document
    cid = arch.customer(owner="sales1")
    arch.document(cid, keeper_id=arch.ids["sales1"])
    arch.document(cid, keeper_id=arch.ids["sales1"])
    arch.document(cid, keeper_id=arch.ids["head1"])
    with app.test_request_context():
        leaver, colleague, head = arch.user("sales1"), arch.user("sales1b"), arch.user("head1")
        results = dict(hooks.call("customers.handover", leaver, colleague, head,
                                  department_id=head.department_id))
        db.session.commit()
        assert results["archives"] == 2
        keepers = sorted(k for (k,) in db.session.query(Document.keeper_id))
        assert keepers == sorted([colleague.id, colleague.id, head.id])
    assert "archives.keeper.handed_over" in arch.audit_actions()


def test_documents_of_is_exported_lazily(arch, app):
    import modules.archives as archives
    cid = arch.customer()
    arch.document(cid)
    with app.app_context():
        assert [d.customer_id for d in archives.documents_of(cid)] == [cid]
        assert "contract" in archives.DOC_TYPES
        assert access.can  # the package itself imported nothing heavy
