"""The module contract: manifests, discovery, dependency order and the registrar.

A module is a package with a module-level ``manifest`` (a :class:`Manifest`) and a
``setup(reg)`` function. The loader finds modules in the ``modules/`` folder and in installed
distributions declaring the ``kehu.modules`` entry-point group, orders them by ``depends`` and
refuses to start, naming the module, on anything that breaks the contract.
"""
from __future__ import annotations

import importlib
import os
import pkgutil
import re
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import click
from flask import Blueprint

NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
ENTRY_POINT_GROUP = "kehu.modules"
# The folder of modules shipped with kehu; KEHU_MODULES_PATH adds more (used by the tests).
MODULES_DIR = Path(__file__).resolve().parent.parent / "modules"


class ModuleError(RuntimeError):
    """A module breaks the contract; the message names the module and is one line."""


def _labels(value, what, module):
    if not (isinstance(value, dict) and value.get("zh_CN") and value.get("en")):
        raise ModuleError(f"module {module}: {what} must be a dict with 'zh_CN' and 'en' texts")
    return dict(value)


@dataclass(frozen=True)
class Permission:
    """A permission a module declares: ``module.action`` with Chinese and English labels.

    ``roles`` are the roles granted it when the module is installed; the administrator edits
    the grants afterwards.
    """

    name: str
    label: dict
    roles: tuple = ()

    @property
    def module(self):
        return self.name.split(".", 1)[0]


@dataclass(frozen=True)
class MenuItem:
    id: str
    label: dict
    endpoint: str
    permission: str
    order: int = 100
    # Optional ``badge(user) -> int | None``: a count shown beside the label (e.g. overdue
    # tickets); called on each page for users who see the item, so it must be one cheap query.
    badge: object = None

    @property
    def module(self):
        return self.id.split(".", 1)[0]


@dataclass(frozen=True)
class AuditAction:
    """An audit action a module writes: ``module.object.verb`` with Chinese and English labels,
    shown on the audit trail page. ``audit.record`` refuses an action nobody declared."""

    name: str
    label: dict

    @property
    def module(self):
        return self.name.split(".", 1)[0]


@dataclass(frozen=True)
class HookSpec:
    """A hook a module offers: other modules contribute functions of ``signature``; ``doc`` says
    when it is called and what a contribution returns. The name starts with the offering module's."""

    name: str
    signature: str
    doc: str = ""

    @property
    def module(self):
        return self.name.split(".", 1)[0]


@dataclass(frozen=True)
class Purpose:
    """A purpose of processing customers' data (PIPL art. 6, 14) that a module declares because
    it processes for it: ``key`` is the consent purpose a customer agrees to ("marketing",
    "analysis", ...); several modules may declare the same purpose with the same labels. A module
    asks the customer's consent for a declared purpose before processing (customers' consent.allows)."""

    key: str
    label: dict


def declared_purposes(app=None):
    """{purpose key: (Purpose, [modules declaring it])} of the running app."""
    from flask import current_app
    return (app or current_app).extensions.get("kehu.purposes", {})


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    title: dict
    summary: dict = field(default_factory=lambda: {"zh_CN": "", "en": ""})
    depends: tuple = ()
    uses: tuple = ()  # optional modules, loaded first when present
    auto_install: bool = False  # installed by `kehu init`
    required: bool = False  # always installed and enabled in every department (customers)
    # Roles that work company-wide and have no department of their own (e.g. "security" for
    # incidents): for a user of such a role the installed module counts as enabled, whatever
    # their department. Everyone else still needs their department to enable it.
    company_roles: tuple = ()

    def check(self, where):
        if not NAME_RE.match(self.name or ""):
            raise ModuleError(f"module {where}: manifest name {self.name!r} is not a lower-case identifier")
        if self.name != where:
            raise ModuleError(f"module {where}: manifest name {self.name!r} differs from its package name")
        if not re.match(r"^\d+\.\d+(\.\d+)?$", str(self.version)):
            raise ModuleError(f"module {where}: manifest version {self.version!r} is not like 1.0.0")
        _labels(self.title, "title", where)
        for dep in (*self.depends, *self.uses):
            if not isinstance(dep, str) or not NAME_RE.match(dep):
                raise ModuleError(f"module {where}: dependency {dep!r} is not a module name")
        from core.models import ROLES
        if bad := [r for r in self.company_roles if r not in ROLES]:
            raise ModuleError(f"module {where}: company_roles names unknown roles {bad}")


@dataclass
class ModuleInfo:
    """What the loader knows of one discovered module, for the admin page and `modules list`."""

    name: str
    package: str  # importable package name
    source: str  # "modules/" folder or "entry point <distribution>"
    manifest: Manifest
    setup: object
    path: Path
    contributions: dict = field(default_factory=lambda: {
        "blueprints": [], "permissions": [], "menus": [], "cli": [], "hooks": [], "rules": [],
        "hooks_offered": [], "audit_actions": [], "tables": [],
        "public_links": [], "migrations": None, "templates": None, "translations": None,
    })


def _load_package(package, name, source):
    try:
        mod = importlib.import_module(package)
    except Exception as exc:  # the admin must learn which module failed, and why
        raise ModuleError(f"module {name}: cannot be imported ({source}): {exc}") from exc
    manifest = getattr(mod, "manifest", None)
    if not isinstance(manifest, Manifest):
        raise ModuleError(f"module {name}: has no `manifest = Manifest(...)` in its __init__")
    manifest.check(name)
    setup = getattr(mod, "setup", None)
    if not callable(setup):
        raise ModuleError(f"module {name}: has no setup(reg) function")
    return ModuleInfo(name, package, source, manifest, setup, Path(mod.__file__).resolve().parent)


def discover(extra_paths=()):
    """Find every module: the modules/ folder, extra folders, then the entry-point group."""
    found = {}
    folders = [(MODULES_DIR, "modules")] + [(Path(p), None) for p in extra_paths]
    for folder, prefix in folders:
        if not folder.is_dir():
            continue
        for info in sorted(pkgutil.iter_modules([str(folder)]), key=lambda i: i.name):
            if not info.ispkg or info.name.startswith("_"):
                continue
            if prefix is None:
                # a test or site folder of modules: import it as a top-level package
                import sys
                if str(folder) not in sys.path:
                    sys.path.insert(0, str(folder))
                package = info.name
            else:
                package = f"{prefix}.{info.name}"
            if info.name in found:
                raise ModuleError(f"module {info.name}: found twice ({found[info.name].source} and {folder})")
            found[info.name] = _load_package(package, info.name, f"{folder.name}/")
    seen_dists = set()
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist else "?"
        if (ep.name, dist) in seen_dists:  # the same distribution seen twice on sys.path
            continue
        seen_dists.add((ep.name, dist))
        if ep.name in found:
            raise ModuleError(f"module {ep.name}: provided both by {found[ep.name].source} and entry point {dist}")
        found[ep.name] = _load_package(ep.value.split(":")[0], ep.name, f"entry point {dist}")
    return found


def order(found):
    """Dependency order, deterministic: by depth then name (as Odoo does)."""
    for info in found.values():
        for dep in info.manifest.depends:
            if dep not in found:
                raise ModuleError(f"module {info.name}: depends on {dep!r}, which is not available")
    depth, visiting = {}, []

    def walk(name):
        if name in depth:
            return depth[name]
        if name in visiting:
            cycle = " -> ".join(visiting[visiting.index(name):] + [name])
            raise ModuleError(f"module {name}: dependency cycle {cycle}")
        visiting.append(name)
        m = found[name].manifest
        deps = [d for d in (*m.depends, *m.uses) if d in found]
        depth[name] = 1 + max((walk(d) for d in deps), default=-1)
        visiting.pop()
        return depth[name]

    for name in sorted(found):
        walk(name)
    return [found[n] for n in sorted(found, key=lambda n: (depth[n], n))]


def lazy_exports(package, exports):
    """A module-level ``__getattr__`` that imports an exported name on first use, so a module's
    ``__init__`` stays light: ``__getattr__ = lazy_exports(__name__, {"grade_of": "services"})``."""
    def __getattr__(name):
        if name in exports:
            return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


class Registrar:
    """The only way a module touches the app. Each call checks the module's naming rule."""

    def __init__(self, app, info: ModuleInfo):
        self.app = app
        self.info = info
        self.name = info.name

    def _prefixed(self, value, what):
        if value != self.name and not value.startswith(self.name + "."):
            raise ModuleError(f"module {self.name}: {what} {value!r} must be named {self.name}.…")

    def blueprint(self, bp: Blueprint):
        if bp.name != self.name:
            raise ModuleError(f"module {self.name}: blueprint {bp.name!r} must be named {self.name!r}")
        if (bp.url_prefix or "").strip("/") != self.name:
            raise ModuleError(f"module {self.name}: blueprint URL prefix must be /{self.name}/")
        claimed = self.app.extensions.setdefault("kehu.public_links", {})
        if self.name in claimed:
            raise ModuleError(f"module {self.name}: URL prefix /{self.name}/ is already used by "
                              f"{claimed[self.name]}'s public links")
        self.app.register_blueprint(bp)
        self.info.contributions["blueprints"].append(bp.name)

    def public_links(self, bp: Blueprint):
        """A module's one public blueprint, for links handed to people who have no account (the
        feedback module's one-time customer forms at ``/f/<token>``): named ``<module>_public``,
        under a one-segment prefix that no module and no core page uses, and every view in it
        marked ``@public``. Everything else a module serves stays under ``/<module>/``."""
        if bp.name != f"{self.name}_public":
            raise ModuleError(f"module {self.name}: public blueprint {bp.name!r} must be named {self.name}_public")
        if self.info.contributions["public_links"]:
            raise ModuleError(f"module {self.name}: has more than one public blueprint")
        prefix = (bp.url_prefix or "").strip("/")
        claimed = self.app.extensions.setdefault("kehu.public_links", {})
        used = {rule.rule.strip("/").split("/", 1)[0] for rule in self.app.url_map.iter_rules()}
        if not NAME_RE.match(prefix):
            raise ModuleError(f"module {self.name}: public blueprint URL prefix {bp.url_prefix!r} must be "
                              f"one lower-case path segment")
        if prefix in used or prefix in claimed or prefix in self.app.extensions["kehu.modules_loading"]:
            raise ModuleError(f"module {self.name}: public URL prefix /{prefix}/ is already taken")
        claimed[prefix] = self.name
        self.app.register_blueprint(bp)
        for endpoint, view in self.app.view_functions.items():
            if endpoint.startswith(bp.name + ".") and not endpoint.endswith(".static") \
                    and not getattr(view, "kehu_public", False):
                raise ModuleError(f"module {self.name}: endpoint {endpoint} of its public blueprint "
                                  f"is not marked @public")
        self.info.contributions["public_links"].append(f"{bp.name} /{prefix}/")

    def permissions(self, *perms: Permission):
        from core import access
        for perm in perms:
            self._prefixed(perm.name, "permission")
            _labels(perm.label, f"permission {perm.name} label", self.name)
            access.declare(perm)
            self.info.contributions["permissions"].append(perm.name)

    def menu(self, *items: MenuItem):
        from core import menus
        for item in items:
            self._prefixed(item.id, "menu id")
            self._prefixed(item.endpoint, "menu endpoint")
            self._prefixed(item.permission, "menu permission")
            _labels(item.label, f"menu {item.id} label", self.name)
            menus.add(self.app, item)
            self.info.contributions["menus"].append(item.id)

    def migrations(self, folder="migrations"):
        path = self.info.path / folder
        if not path.is_dir():
            raise ModuleError(f"module {self.name}: migrations folder {path} is missing")
        _check_branch(self.name, path)
        self.app.extensions["kehu.migration_paths"].append(str(path))
        self.info.contributions["migrations"] = str(path)

    def cli(self, command: click.Command, under=None):
        """Add a click command or group named after the module, at the top or under a core group
        (``under="import"`` gives ``kehu import customers``)."""
        from core.cli import STABLE_COMMANDS
        stable = STABLE_COMMANDS.get(f"{under} {command.name}") == self.name
        if command.name != self.name and not stable:
            raise ModuleError(f"module {self.name}: CLI command {command.name!r} must be named {self.name!r}")
        self.app.extensions["kehu.cli"].append((under, command))
        self.info.contributions["cli"].append(f"{under} {command.name}" if under else command.name)

    def offers_hook(self, *specs: HookSpec):
        """Declare the hooks this module calls and others may contribute to."""
        from core import hooks
        for spec in specs:
            if not isinstance(spec, HookSpec):
                raise ModuleError(f"module {self.name}: offers_hook takes HookSpec(...), not {spec!r}")
            self._prefixed(spec.name, "hook")
            hooks.offer(self.app, spec)
            self.info.contributions["hooks_offered"].append(spec.name)

    def hook(self, hook_name: str, func):
        """Contribute ``func`` to a hook another module (or core, or this module) offers. The owner
        must be loaded first (in ``depends`` or ``uses``) and offer it; a hook of an optional
        module (``uses``) that is absent is recorded and never called."""
        from core import hooks
        owner = hook_name.split(".", 1)[0]
        loaded = self.app.extensions["kehu.modules_loading"]
        if owner != "core" and owner != self.name and owner not in (*self.info.manifest.depends,
                                                                    *self.info.manifest.uses):
            raise ModuleError(f"module {self.name}: hook {hook_name!r} belongs to {owner}, "
                              f"which is not in its depends or uses")
        if owner in loaded or owner == "core" or owner == self.name:
            if not hooks.is_offered(self.app, hook_name) and owner != self.name:
                raise ModuleError(f"module {self.name}: hook {hook_name!r} is not offered by {owner}")
        if owner == self.name:
            self.app.extensions["kehu.own_hooks"].append((self.name, hook_name))
        if owner not in loaded and owner != "core":
            self.info.contributions["hooks"].append(f"{hook_name} (inactive: {owner} is absent)")
            return
        hooks.add(self.app, hook_name, self.name, func)
        self.info.contributions["hooks"].append(hook_name)

    def audit_actions(self, *actions: AuditAction):
        """Declare the audit actions this module writes, with their labels."""
        from core import audit
        for action in actions:
            self._prefixed(action.name, "audit action")
            _labels(action.label, f"audit action {action.name} label", self.name)
            audit.declare(action)
            self.info.contributions["audit_actions"].append(action.name)

    def purposes(self, *purposes: Purpose):
        """Declare the purposes of processing this module processes customers' data for."""
        registry = self.app.extensions.setdefault("kehu.purposes", {})
        for purpose in purposes:
            if not isinstance(purpose, Purpose) or not NAME_RE.match(purpose.key or ""):
                raise ModuleError(f"module {self.name}: purposes takes Purpose(key, labels), not {purpose!r}")
            label = _labels(purpose.label, f"purpose {purpose.key} label", self.name)
            known = registry.get(purpose.key)
            if known is not None and known[0].label != label:
                raise ModuleError(f"module {self.name}: purpose {purpose.key!r} is declared by "
                                  f"{known[1][0]} with other labels")
            if known is None:
                known = registry[purpose.key] = (purpose, [])
            if self.name not in known[1]:
                known[1].append(self.name)
            self.info.contributions.setdefault("purposes", []).append(purpose.key)

    def record_rule(self, model, rule):
        from core import access
        if not model.__tablename__.startswith(self.name + "_"):
            raise ModuleError(f"module {self.name}: record rule for foreign table {model.__tablename__}")
        access.add_record_rule(self.app, model, rule)
        self.info.contributions["rules"].append(model.__tablename__)

    def check_tables(self, *models):
        for model in models:
            if not model.__tablename__.startswith(self.name + "_"):
                raise ModuleError(f"module {self.name}: table {model.__tablename__!r} must start with {self.name}_")


def _check_branch(name, folder):
    """The module's Alembic revisions form its own branch: one base labelled with its name."""
    import ast
    bases, labels, revisions = [], set(), 0
    for path in sorted(Path(folder).glob("*.py")):
        values = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                try:
                    values[node.targets[0].id] = ast.literal_eval(node.value)
                except ValueError:
                    continue
        if "revision" not in values:
            continue
        revisions += 1
        branch = values.get("branch_labels") or ()
        branch = (branch,) if isinstance(branch, str) else tuple(branch)
        labels |= set(branch)
        if values.get("down_revision") is None:
            bases.append((path.name, branch))
    if not revisions:
        return  # no revision yet: tools/make_migration.py is about to write the first one
    if len(bases) != 1:
        raise ModuleError(f"module {name}: migrations need exactly one base revision, found {len(bases)}")
    if name not in bases[0][1] or labels - {name}:
        raise ModuleError(f"module {name}: Alembic branch label must be {name!r} "
                          f"(found {', '.join(sorted(labels)) or 'none'})")


def _check_templates(name, folder):
    """A module's templates live under templates/<name>/, so it cannot replace another's."""
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and path.relative_to(folder).parts[0] != name:
            raise ModuleError(f"module {name}: template {path.relative_to(folder)} must be under "
                              f"templates/{name}/")


def load_all(app, extra_paths=()):
    """Discover, order and set up every module; any contract error stops start-up."""
    from core import hooks
    from core.db import db
    found = discover(extra_paths)
    ordered = order(found)
    before = set(db.metadata.tables)
    loading = app.extensions.setdefault("kehu.modules_loading", set())
    app.extensions.setdefault("kehu.own_hooks", [])
    for info in ordered:
        loading.add(info.name)
        reg = Registrar(app, info)
        try:
            info.setup(reg)
        except ModuleError:
            raise
        except Exception as exc:  # name the module: the admin must know which one to fix
            first = (str(exc).splitlines() or [""])[0]
            raise ModuleError(f"module {info.name}: setup failed: {type(exc).__name__}: {first}") from exc
        templates = info.path / "templates"
        if templates.is_dir():
            _check_templates(info.name, templates)
            info.contributions["templates"] = str(templates)
            app.extensions["kehu.template_paths"].append(str(templates))
        translations = info.path / "translations"
        if translations.is_dir():
            info.contributions["translations"] = str(translations)
            app.extensions["kehu.translation_paths"].append(str(translations))
        new_tables = set(db.metadata.tables) - before
        for table in sorted(new_tables):
            if not table.startswith(info.name + "_"):
                raise ModuleError(f"module {info.name}: table {table!r} must start with {info.name}_")
        before |= new_tables
    for module, hook_name in app.extensions["kehu.own_hooks"]:
        if not hooks.is_offered(app, hook_name):
            raise ModuleError(f"module {module}: hook {hook_name!r} is not offered by {module}")
    for info in ordered:
        info.contributions["tables"] = owned_tables(info.name, [i.name for i in ordered], db.metadata.tables)
    return {info.name: info for info in ordered}


def owned_tables(name, names, tables):
    """The tables of module ``name`` among ``tables``: those named ``name_…`` that no other module
    with a longer name (``name_x``) claims. By name rather than by what its setup added to the
    shared MetaData: Python imports a module's models once per process, so a second app built in
    the same process (the tests, the CLI's factory) would see no new tables and record none."""
    longer = [n for n in names if n != name and n.startswith(name + "_")]
    return sorted(t for t in tables if t.startswith(name + "_")
                  and not any(t.startswith(n + "_") for n in longer))


def extra_module_paths():
    value = os.environ.get("KEHU_MODULES_PATH", "")
    return [p for p in value.split(os.pathsep) if p]
