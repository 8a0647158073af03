"""The public core API: everything a module may use from kehu's core, in one place.

A module imports from here and nowhere else in ``core`` (a test scans every module's imports):
``from core.api import Manifest, db, require, scoped, audit``. Names are loaded on first use, so
a module's ``__init__`` may import its manifest types from here and stay import-light.

What is here, by use:

module contract  Manifest, Permission, MenuItem, AuditAction, HookSpec, lazy_exports, ModuleError,
                 Purpose (reg.purposes(...)), declared_purposes() -> {key: (Purpose, [modules])}
data             db, User, Department, ROLES, utcnow, UTCDateTime, next_number, next_numbers,
                 reserve_ids (primary keys for a batch insert), insert_rows(table, [dict]) (the batch),
                 map_ahead(fn, items, helper=, share=) (a command's pure work in a helper process, in order),
                 bulk_cache() (SQLite: a large page cache while a bulk job runs),
                 in_values(column, values) (``column IN values`` for a long list, as fast as the database takes it)
encrypted data   Encrypted, encrypted_column, blind_index_column, crypto.* (see ``crypto`` below)
access           require, public, signed_in, can, deny, scoped, get_or_404, deny_row, ownership_rule,
                 record_rule(Model) (the rule registered for it), AnyActor(role), actor_params(actor),
                 bindable(actor, Model) (selects built once per role), safe_local_url, is_enabled,
                 role_permissions(role) (granted, before any withholding)
audit            audit.record(action, target=..., **details), audit.record_many(action, [details]),
                 audit.count(action, actor=, since=),
                 AuditTarget (what the core.audit_targets hook returns),
                 audit.entries(actor=, actions=, since=, until=, limit=) -> [audit.Entry]
hooks            hooks.call(name, *args, department_id=...), hooks.contributions(name, ...),
                 WorkItem (what the core.work_items hook returns), Finding (core.selfcheck),
                 run_selfcheck() -> [Finding] (core's checks and every installed module's)
audit feed       audit_feed.head_id(), audit_feed.after(last_id, limit, actions=, until_id=) and audit_feed.window(actions=,
                 since=, until=, actor_id=, actor_name=, target_type=, target_id=): the trail oldest
                 first, for rules run from the core.audit_appended hook
PDF              pdf.render(template, **context), pdf.response(template, filename=..., action=...,
                 target=..., fallback=..., **context), PdfError
validation       validation.* (身份证, 统一社会信用代码, phone, e-mail, masks, form field filters,
                 display_phone: E.164 -> "138 0013 8000" / "010-8888 6666" for people),
                 ValidationError
services         ServiceError, department_by_code, deactivate_user
CLI              cli_actor(), cli_fail(message), cli_ready()
settings         module_setting(module, name, default), upload_folder(module)
files            csv_response(header, rows, filename), neutralise(text): formula-safe CSV for Excel
stored files     write_private_file(path, data) (0600, atomic), remove_files(paths) after the commit,
                 rekey_files(rows, path_of, old_key, new_key) (customers.rekey: files to a new data key)
charts           bar_chart(ident, title, {label: count}) drawn by the macro bar_chart_svg (macros.html)
language         pick({"zh_CN": …, "en": …}) → the text in the user's language
time             to_local(dt), local_now(), local_today(), company_timezone(): KEHU_TIMEZONE;
                 local_datetime(dt) is the templates' |local_datetime ("2026-12-01 09:30"; also
                 |local_date). Store UTC, show local.
"""
from __future__ import annotations

import importlib
from types import SimpleNamespace

# name -> (core submodule, attribute); the attribute defaults to the name.
_EXPORTS = {
    # module contract
    "Manifest": ("core.modules", None), "Permission": ("core.modules", None),
    "MenuItem": ("core.modules", None), "AuditAction": ("core.modules", None),
    "HookSpec": ("core.modules", None), "lazy_exports": ("core.modules", None),
    "ModuleError": ("core.modules", None),
    "Purpose": ("core.modules", None), "declared_purposes": ("core.modules", None),
    # data
    "db": ("core.db", None), "User": ("core.models", None), "Department": ("core.models", None),
    "ROLES": ("core.models", None), "utcnow": ("core.models", None),
    "UTCDateTime": ("core.models", None), "next_number": ("core.numbering", None),
    "next_numbers": ("core.numbering", None), "reserve_ids": ("core.db", None),
    "insert_rows": ("core.db", None), "map_ahead": ("core.parallel", None),
    "bulk_cache": ("core.db", None), "in_values": ("core.db", None),
    "Encrypted": ("core.crypto", None), "encrypted_column": ("core.crypto", None),
    "blind_index_column": ("core.crypto", None),
    # access
    "require": ("core.access", None), "public": ("core.access", None),
    "signed_in": ("core.access", None), "can": ("core.access", None),
    "scoped": ("core.access", None), "get_or_404": ("core.access", None),
    "deny": ("core.access", None), "deny_row": ("core.access", None),
    "ownership_rule": ("core.access", None), "record_rule": ("core.access", None),
    "AnyActor": ("core.access", None), "actor_params": ("core.access", None), "bindable": ("core.access", None),
    "role_permissions": ("core.access", None),
    "safe_local_url": ("core.access", None), "is_enabled": ("core.enablement", None),
    # PDF, validation, services
    "pick": ("core.i18n", None), "to_local": ("core.i18n", None), "local_now": ("core.i18n", None), "local_datetime": ("core.i18n", None),
    "local_today": ("core.i18n", None), "PdfError": ("core.pdf", None), "ValidationError": ("core.validation", None),
    "ServiceError": ("core.services", None), "department_by_code": ("core.services", None),
    "deactivate_user": ("core.services", None),
    # CLI and settings
    "cli_actor": ("core.cli", None), "cli_fail": ("core.cli", "fail"),
    "cli_ready": ("core.cli", "require_ready"),
    "module_setting": ("core.settings", None), "upload_folder": ("core.settings", None),
    # files for Excel, audit trail targets
    "csv_response": ("core.exports", None), "neutralise": ("core.exports", None),
    "AuditTarget": ("core.audit", None), "WorkItem": ("core.hooks", None),
    "bar_chart": ("core.charts", None), "write_private_file": ("core.files", None),
    "remove_files": ("core.files", None), "rekey_files": ("core.files", None), "company_timezone": ("core.i18n", None),
    # security self-check (hook core.selfcheck)
    "Finding": ("core.selfcheck", None), "run_selfcheck": ("core.selfcheck", "run"),
}

# Namespaces: a module calls ``audit.record(...)``, ``crypto.encrypt(...)``, ``pdf.render(...)``.
_NAMESPACES = {
    "audit": ("core.audit", ("record", "record_many", "count", "entries", "Entry")),
    "hooks": ("core.hooks", ("call", "contributions")),
    "audit_feed": ("core.watch", ("head_id", "after", "window")),
    "pdf": ("core.pdf", ("render", "response", "PdfError")),
    "crypto": ("core.crypto", (
        "encrypt", "decrypt", "encrypt_bytes", "decrypt_bytes", "blind_index",
        "blind_index_candidates", "new_subject_key", "destroy_subject_key", "SubjectKey",
        "DecryptionError", "Encrypted", "suite", "is_current", "rekey_fields", "BulkSealer", "BulkOpener")),
    "validation": ("core.validation", (
        "ValidationError", "clean_text", "normalise_structured", "id_number", "credit_code",
        "phone", "email", "bank_account", "postcode", "mask_id_number", "mask_phone",
        "mask_bank_account", "mask_text", "mask_name", "display_phone", "IdNumber", "CreditCode", "Phone",
        "Email", "BankAccount", "Postcode", "CleanText")),
}

__all__ = sorted([*_EXPORTS, *_NAMESPACES])


def __getattr__(name):
    if name in _EXPORTS:
        where, attr = _EXPORTS[name]
        value = getattr(importlib.import_module(where), attr or name)
    elif name in _NAMESPACES:
        where, names = _NAMESPACES[name]
        source = importlib.import_module(where)
        value = SimpleNamespace(**{n: getattr(source, n) for n in names})
    else:
        raise AttributeError(f"core.api has no {name!r}: a module may use only {', '.join(__all__)}")
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__():
    return __all__
