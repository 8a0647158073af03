"""The module contract: the loader's refusals, its order, entry-point discovery, and a contract test
over every module this installation discovers."""
from __future__ import annotations

import ast
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from core import access, services
from core import modules as loader
from core.app import create_app
from core.db import db
from core.modules import NAME_RE, ModuleError
from tests.conftest import make_config

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ROOT = FIXTURES.parent.parent


def build(tmp_path, folder):
    return create_app(make_config(tmp_path, MODULE_PATHS=[str(FIXTURES / folder)]))


def refusal(tmp_path, folder):
    with pytest.raises(ModuleError) as caught:
        build(tmp_path, folder)
    message = str(caught.value)
    assert "\n" not in message, message
    return message


# --- refusals -------------------------------------------------------------------------------------

def test_dependency_cycle_is_refused_naming_the_modules(tmp_path):
    message = refusal(tmp_path, "modules_cycle")
    assert message.startswith("module cyc_a:")
    assert "cycle" in message and "cyc_a -> cyc_b -> cyc_a" in message


def test_missing_dependency_is_refused_naming_module_and_dependency(tmp_path):
    message = refusal(tmp_path, "modules_missing")
    assert message.startswith("module needy:")
    assert "absent_mod" in message


def test_manifest_name_must_be_the_package_name(tmp_path):
    message = refusal(tmp_path, "modules_bad_name")
    assert message.startswith("module namebad:")
    assert "'different'" in message


def test_blueprint_must_be_named_after_the_module(tmp_path):
    message = refusal(tmp_path, "modules_bad_blueprint")
    assert message.startswith("module bpbad:")
    assert "blueprint 'other'" in message


def test_blueprint_url_prefix_must_be_the_module_name(tmp_path):
    message = refusal(tmp_path, "modules_bad_url")
    assert message.startswith("module urlbad:")
    assert "/urlbad/" in message


def test_table_must_be_prefixed_with_the_module_name(tmp_path):
    try:
        message = refusal(tmp_path, "modules_bad_table")
    finally:  # the shared MetaData must not keep the stray table for later tests
        if "wrong_thing" in db.metadata.tables:
            db.metadata.remove(db.metadata.tables["wrong_thing"])
    assert message.startswith("module tabbad:")
    assert "'wrong_thing'" in message


def test_permission_must_be_prefixed_with_the_module_name(tmp_path):
    message = refusal(tmp_path, "modules_bad_permission")
    assert message.startswith("module permbad:")
    assert "'other.view'" in message
    assert "other.view" not in access.declared()


def test_menu_must_be_prefixed_with_the_module_name(tmp_path):
    message = refusal(tmp_path, "modules_bad_menu")
    assert message.startswith("module menubad:")
    assert "'other.menu'" in message


def test_view_requiring_an_undeclared_permission_is_refused(tmp_path):
    message = refusal(tmp_path, "modules_undeclared")
    assert message.startswith("module undecl:")
    assert "undecl.index" in message and "'undecl.secret'" in message


def test_endpoint_declaring_no_permission_is_refused(tmp_path):
    message = refusal(tmp_path, "modules_noperm")
    assert message.startswith("module noperm:")
    assert "noperm.index" in message and "declares no permission" in message


def test_menu_item_needing_an_undeclared_permission_is_refused(tmp_path):
    message = refusal(tmp_path, "modules_menu_undeclared")
    assert message.startswith("module menuperm:") and "menuperm.missing" in message


def test_menu_item_pointing_nowhere_is_refused(tmp_path):
    message = refusal(tmp_path, "modules_menu_endpoint")
    assert message.startswith("module menuend:") and "menuend.nowhere" in message


def test_a_failing_setup_is_reported_naming_the_module(tmp_path):
    message = refusal(tmp_path, "modules_bad_setup")
    assert message.startswith("module setupfail:") and "missing_part" in message


def test_audit_action_must_be_prefixed_with_the_module_name(tmp_path):
    message = refusal(tmp_path, "modules_bad_audit")
    assert message.startswith("module auditbad:") and "'other.thing.done'" in message


def test_contributing_to_a_hook_its_owner_does_not_offer_is_refused(tmp_path):
    message = refusal(tmp_path, "modules_bad_hook")
    assert message == "module hookbad: hook 'customers.timline' is not offered by customers"


def test_contributing_to_a_hook_of_a_module_not_in_depends_or_uses_is_refused(tmp_path):
    message = refusal(tmp_path, "modules_hook_foreign")
    assert message.startswith("module hookforeign:") and "not in its depends or uses" in message


def test_a_hook_of_its_own_must_be_offered(tmp_path):
    message = refusal(tmp_path, "modules_hook_own")
    assert message == "module ownhook: hook 'ownhook.counts' is not offered by ownhook"


def test_a_hook_of_an_absent_optional_module_is_accepted_and_never_called(tmp_path):
    from core import hooks
    app = build(tmp_path, "modules_hook_absent")
    with app.app_context():
        db.create_all()
        assert hooks.call("hookabsent.ping", all_departments=True) == []  # loaded, not installed
        services.install_module("test", "hookabsent")
        assert hooks.call("nowhere_mod.counts", [1], all_departments=True) == []
        assert hooks.call("hookabsent.ping", all_departments=True) == [("hookabsent", "pong")]
        with pytest.raises(LookupError, match="not offered by customers"):
            hooks.call("customers.timline", None, all_departments=True)
    assert app.extensions["kehu.modules"]["hookabsent"].contributions["hooks_offered"] == ["hookabsent.ping"]


def test_templates_outside_the_module_folder_are_refused(tmp_path):
    message = refusal(tmp_path, "modules_bad_templates")
    assert message.startswith("module tplbad:") and "customers/detail.html" in message
    assert "templates/tplbad/" in message


def test_the_alembic_branch_label_must_be_the_module_name(tmp_path):
    message = refusal(tmp_path, "modules_bad_branch")
    assert message.startswith("module branchbad:") and "'branchbad'" in message and "somethingelse" in message


def test_an_endpoint_whose_kind_does_not_match_its_methods_is_refused(tmp_path):
    message = refusal(tmp_path, "modules_bad_kind")
    assert message == "module kindbad: endpoint kindbad.delete is declared 'read' but answers POST"


def test_an_undeclared_audit_action_is_refused(app):
    from core import audit
    with app.app_context(), pytest.raises(LookupError, match="'grading.grade.overriden' is not declared"):
        audit.record("grading.grade.overriden")


def test_a_refused_module_stops_the_cli_with_one_line(tmp_path):
    """`kehu` started on a broken module tells which one in one line, not a traceback."""
    from click.testing import CliRunner
    from flask.cli import ScriptInfo

    from core.cli import main
    info = ScriptInfo(create_app=lambda: build(tmp_path, "modules_missing"))
    result = CliRunner().invoke(main, ["modules", "list"], obj=info)
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == [
        "Error: module needy: depends on 'absent_mod', which is not available"]


# --- order and discovery --------------------------------------------------------------------------

ORDER_FIXTURES = ["ord_beta", "ord_delta", "ord_zeta", "ord_alpha", "ord_gamma"]


def test_load_order_is_by_depth_then_name(tmp_path):
    app = build(tmp_path, "modules_order")
    names = [n for n in app.extensions["kehu.modules"] if n.startswith("ord_")]
    assert names == ORDER_FIXTURES
    # dependencies always come before their dependents, whatever else is installed
    loaded = list(app.extensions["kehu.modules"])
    for name, info in app.extensions["kehu.modules"].items():
        for dep in (*info.manifest.depends, *info.manifest.uses):
            if dep in loaded:
                assert loaded.index(dep) < loaded.index(name), (dep, name)


def test_load_order_does_not_depend_on_discovery_order():
    found = loader.discover([str(FIXTURES / "modules_order")])
    forward = [i.name for i in loader.order(found)]
    backward = [i.name for i in loader.order(dict(reversed(list(found.items()))))]
    assert forward == backward
    assert [n for n in forward if n.startswith("ord_")] == ORDER_FIXTURES


def test_notices_is_discovered_through_its_entry_point(app):
    eps = [ep for ep in metadata.entry_points(group=loader.ENTRY_POINT_GROUP) if ep.name == "notices"]
    assert eps and eps[0].dist.name == "kehu-notices"
    info = app.extensions["kehu.modules"]["notices"]
    assert info.source == "entry point kehu-notices"
    assert info.path == FIXTURES / "kehu-notices" / "notices"
    assert info.contributions["blueprints"] == ["notices"]
    assert set(info.contributions["permissions"]) == {"notices.view", "notices.post"}
    assert info.contributions["migrations"] == str(info.path / "migrations")
    assert "/notices/" in {r.rule for r in app.url_map.iter_rules()}


def test_tables_are_recorded_for_every_app_of_the_process(tmp_path):
    """The second app of a process imports no models afresh; it still knows each module's tables."""
    for run in ("first", "second"):
        (tmp_path / run).mkdir()
        app = create_app(make_config(tmp_path / run))
        contributions = app.extensions["kehu.modules"]
        assert contributions["notices"].contributions["tables"] == ["notices_notice"], run
        assert "customers_customer" in contributions["customers"].contributions["tables"], run


def test_a_table_belongs_to_the_module_with_the_longest_matching_name():
    tables = ["ord_x", "ord_alpha_x", "ord_alphabet", "other_y"]
    assert loader.owned_tables("ord", ["ord", "ord_alpha"], tables) == ["ord_alphabet", "ord_x"]
    assert loader.owned_tables("ord_alpha", ["ord", "ord_alpha"], tables) == ["ord_alpha_x"]


def test_notices_source_shows_on_the_admin_page(app, client, login_as):
    login_as(client, "root", role="admin", dept=None)
    html = client.get("/admin/modules").get_data(as_text=True)
    assert 'id="module-notices"' in html
    assert "entry point kehu-notices" in html


def test_modules_list(app, runner, enable_module):
    result = runner("modules", "list")
    assert result.exit_code == 0, result.output
    lines = {line.split("\t")[0]: line.split("\t") for line in result.output.splitlines()}
    assert set(lines) == set(app.extensions["kehu.modules"])
    assert lines["notices"] == ["notices", "1.0.0", "部门公告", "depends=-", "entry point kehu-notices",
                                "installed, enabled in: -"]
    enable_module("D1", "notices")
    enable_module("D2", "notices")
    result = runner("modules", "list")
    notices = next(line for line in result.output.splitlines() if line.startswith("notices\t"))
    assert notices.endswith("installed, enabled in: D1, D2")


# --- the contract, over every discovered module -----------------------------------------------------

def _module_files(info):
    for path in sorted(info.path.rglob("*.py")):
        rel = path.relative_to(info.path)
        if rel.parts[0] in ("migrations", "tests"):
            continue
        yield path


def _absolute_imports(path):
    """(module imported from, names) for each absolute import statement of a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, ()
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, tuple(alias.name for alias in node.names)


def _is_submodule(info, name):
    return (info.path / f"{name}.py").exists() or (info.path / name / "__init__.py").exists()


def test_every_module_keeps_the_naming_contract(app):
    problems = []
    infos = app.extensions["kehu.modules"]
    assert "notices" in infos
    rules = list(app.url_map.iter_rules())
    for name, info in infos.items():
        if not NAME_RE.match(name) or info.package.rsplit(".", 1)[-1] != name or info.manifest.name != name:
            problems.append(f"{name}: name, package {info.package} and manifest must agree")
        for bp in info.contributions["blueprints"]:
            if bp != name:
                problems.append(f"{name}: blueprint {bp}")
        for rule in rules:
            if rule.endpoint.split(".")[0] == name and not rule.rule.startswith(f"/{name}/"):
                problems.append(f"{name}: route {rule.rule} outside /{name}/")
        for perm in info.contributions["permissions"]:
            if not perm.startswith(name + "."):
                problems.append(f"{name}: permission {perm}")
        declared = set(access.declared())
        for item in app.extensions["kehu.menus"]:
            if item.id in info.contributions["menus"]:
                if item.endpoint not in app.view_functions:
                    problems.append(f"{name}: menu {item.id} points at unknown endpoint {item.endpoint}")
                if item.permission not in declared:
                    problems.append(f"{name}: menu {item.id} needs undeclared {item.permission}")
        for mapper in db.Model.registry.mappers:
            where = mapper.class_.__module__
            if where == info.package or where.startswith(info.package + "."):
                table = getattr(mapper.local_table, "name", "")
                if not table.startswith(name + "_"):
                    problems.append(f"{name}: table {table}")
    assert problems == []


def test_every_module_imports_only_what_it_depends_on(app):
    """No import of a module outside depends/uses, and never another module's internals: only
    what its package ``__init__`` exports."""
    infos = app.extensions["kehu.modules"]
    problems = []
    for name, info in infos.items():
        allowed = {name, *info.manifest.depends, *info.manifest.uses}
        for path in _module_files(info):
            where = f"{name} ({path.relative_to(info.path)})"
            for module, names in _absolute_imports(path):
                targets = [module, *(f"{module}.{n}" for n in names)]
                for other, other_info in infos.items():
                    package = other_info.package
                    if other == name or not any(t == package or t.startswith(package + ".") for t in targets):
                        continue
                    if other not in allowed:
                        problems.append(f"{where} imports {other}, which is not in its depends")
                    if module.startswith(package + ".") or (
                            module == package and any(_is_submodule(other_info, n) for n in names)):
                        problems.append(f"{where} imports internals of {other}: {module} {names}")
    assert problems == []


def test_every_module_uses_core_only_through_the_public_api(app):
    """Modules (folder and entry-point ones alike, migrations included) import from core only
    ``core.api``, and only names it exports."""
    import core.api
    infos = app.extensions["kehu.modules"]
    problems = []
    for name, info in infos.items():
        for path in sorted(info.path.rglob("*.py")):
            where = f"{name} ({path.relative_to(info.path)})"
            for module, names in _absolute_imports(path):
                if module != "core" and not module.startswith("core."):
                    continue
                if module != "core.api":
                    problems.append(f"{where} imports {module}")
                elif unknown := [n for n in names if n not in core.api.__all__]:
                    problems.append(f"{where} imports {unknown} from core.api, which does not export them")
    assert len(infos) >= 4 and problems == []


def test_the_public_api_offers_every_name_it_lists():
    import core.api
    missing = [n for n in core.api.__all__ if getattr(core.api, n, None) is None]
    assert missing == []
    with pytest.raises(AttributeError, match="core.api has no 'Keyring'"):
        core.api.Keyring  # noqa: B018 - an internal stays internal


IMPORT_PROBE = """
import importlib, sys
package = sys.argv[1]
importlib.import_module(package)
heavy = sorted(m for m in sys.modules
               if m.startswith(package + ".") or m.split(".")[0] in ("sqlalchemy", "flask_sqlalchemy", "weasyprint"))
print(" ".join(heavy))
"""


def test_every_module_init_is_import_light(app):
    """Importing a module's package runs no setup: no models, views or database layer yet."""
    infos = app.extensions["kehu.modules"]
    procs = {name: subprocess.Popen([sys.executable, "-c", IMPORT_PROBE, info.package], cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, info in infos.items()}
    heavy = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, f"{name}: {err.strip().splitlines()[-1:]}"
        if out.strip():
            heavy[name] = out.split()
    assert heavy == {}


def test_every_module_migrations_are_its_own_branch(app):
    from alembic.script import ScriptDirectory
    with app.app_context():
        script = ScriptDirectory.from_config(app.extensions["migrate"].migrate.get_config())
        revisions = list(script.walk_revisions())
    for name, info in app.extensions["kehu.modules"].items():
        folder = info.contributions["migrations"]
        if folder is None:
            continue
        own = [r for r in revisions if Path(r.path).parent == Path(folder)]
        assert own, f"{name}: no revisions in {folder}"
        bases = [r for r in own if r.down_revision is None]
        assert len(bases) == 1, f"{name}: one base revision expected"
        assert name in bases[0].branch_labels, f"{name}: base revision must carry branch label {name}"
        assert bases[0].dependencies, f"{name}: base revision must depend on a core revision"
        for rev in own:
            assert set(rev.branch_labels) <= {name}, f"{name}: revision {rev.revision} labels"


def sample_values(rule):
    """A value for each argument of a URL rule that its converter accepts (any(...) takes one of
    its words, every other converter 1)."""
    values = {}
    for arg, converter in rule._converters.items():
        words = getattr(converter, "items", None)
        values[arg] = sorted(words)[0] if words else 1
    return values


def _urls_of(app, module):
    adapter = app.url_map.bind("localhost")
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] != module or rule.endpoint.endswith(".static"):
            continue
        values = sample_values(rule)
        method = "GET" if "GET" in rule.methods else sorted(rule.methods - {"HEAD", "OPTIONS"})[0]
        yield method, adapter.build(rule.endpoint, values, method=method)


def test_every_module_answers_404_where_it_is_not_enabled(app, client, login_as):
    """The head of a department that enabled nothing sees no menu of a module and gets 404
    from each of its routes, even though the role holds the module's permissions."""
    login_as(client, "lonely_head", role="head", dept="NONE")
    home = client.get("/").get_data(as_text=True)
    checked = 0
    for name, info in app.extensions["kehu.modules"].items():
        if info.manifest.required:
            continue
        for item in info.contributions["menus"]:
            assert f'id="menu-{item.replace(".", "-")}"' not in home
        for method, url in _urls_of(app, name):
            response = client.open(url, method=method)
            assert response.status_code == 404, (name, method, url, response.status_code)
            checked += 1
    assert checked >= 2  # at least the notices routes


def test_an_empty_migrations_folder_is_accepted_for_the_first_revision(tmp_path):
    """tools/make_migration.py starts the app to write a module's first revision: an empty
    migrations/ folder must not stop it."""
    package = tmp_path / "mods" / "freshmod"
    (package / "migrations").mkdir(parents=True)
    (package / "__init__.py").write_text(
        "from core.api import Manifest\n"
        "manifest = Manifest(name='freshmod', version='1.0.0', title={'zh_CN': '新模块', 'en': 'Fresh'})\n"
        "def setup(reg):\n    reg.migrations()\n", encoding="utf-8")
    app = create_app(make_config(tmp_path, MODULE_PATHS=[str(tmp_path / "mods")]))
    assert app.extensions["kehu.modules"]["freshmod"].contributions["migrations"].endswith("migrations")


# --- public links (feedback /f/<token>) -----------------------------------------------------------

def _public_module(tmp_path, name, bp_name, prefix, public=True):
    """A module folder in tmp_path whose setup registers one public blueprint."""
    folder = tmp_path / "mods"
    package = folder / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "from core.modules import Manifest\n"
        f"manifest = Manifest(name={name!r}, version='1.0.0', title={{'zh_CN': '测试', 'en': 'Test'}})\n"
        "def setup(reg):\n"
        "    from . import views\n"
        "    reg.public_links(views.bp)\n", encoding="utf-8")
    (package / "views.py").write_text(
        "from flask import Blueprint\n"
        "from core.access import public\n"
        f"bp = Blueprint({bp_name!r}, __name__, url_prefix={prefix!r})\n"
        "@bp.route('/<token>')\n"
        + ("@public\n" if public else "")
        + "def form(token):\n"
        "    return 'form ' + token\n", encoding="utf-8")
    return folder


def test_a_module_may_serve_one_public_blueprint_outside_its_prefix(tmp_path):
    folder = _public_module(tmp_path, "publinks", "publinks_public", "/p")
    sys.modules.pop("publinks", None)
    sys.modules.pop("publinks.views", None)
    app = create_app(make_config(tmp_path, MODULE_PATHS=[str(folder)]))
    assert app.extensions["kehu.modules"]["publinks"].contributions["public_links"] == ["publinks_public /p/"]
    response = app.test_client().get("/p/abc")
    assert response.status_code == 200 and response.get_data(as_text=True) == "form abc"


@pytest.mark.parametrize("bp_name, prefix, public, expected", [
    ("other_public", "/p", True, "must be named publinks_public"),
    ("publinks_public", "/login", True, "already taken"),
    ("publinks_public", "/customers", True, "already taken"),
    ("publinks_public", "/p/q", True, "one lower-case path segment"),
    ("publinks_public", "/p", False, "is not marked @public"),
])
def test_a_public_blueprint_breaking_the_rules_is_refused(tmp_path, bp_name, prefix, public, expected):
    folder = _public_module(tmp_path, "publinks", bp_name, prefix, public)
    sys.modules.pop("publinks", None)
    sys.modules.pop("publinks.views", None)
    with pytest.raises(ModuleError) as caught:
        create_app(make_config(tmp_path, MODULE_PATHS=[str(folder)]))
    assert str(caught.value).startswith("module publinks:") and expected in str(caught.value)
