"""The hooks the customer register offers. Another module contributes with
``reg.hook("customers.timeline", func)``; the types named here are exported by this package."""
from core.api import HookSpec

ALL = (
    HookSpec("customers.timeline", "timeline(customer, actor) -> [TimelineEvent]",
             "Events of the module on the customer page's timeline, newest first or in any order: "
             "only what ``actor`` may see (the module's view permission), as for its panel. actor "
             "None: every event, for the customer's own copy of their data (lifecycle)."),
    HookSpec("customers.panels", "panels(customer, actor) -> [Panel]",
             "Boxes on the customer page; the panel's template is the module's own."),
    HookSpec("customers.list_columns", "list_columns(actor) -> [ListColumn]",
             "Extra columns of the customer list, optionally sortable."),
    HookSpec("customers.list_filters", "list_filters(actor) -> [ListFilter]",
             "Extra filters of the customer list."),
    HookSpec("customers.handover", "handover(from_user, to_user, actor) -> int",
             "A leaver's customers move to a colleague: reassign the module's rows kept by "
             "from_user; return how many moved. Called for every module, enabled or not."),
    HookSpec("customers.changed", "changed(customer, actor, what) -> None",
             "The customer was created or edited (what: \"customer\"), one of its transaction "
             "records added, corrected or voided (what: \"transaction\"), or a consent recorded or "
             "withdrawn (what: \"consent\"): update what the module derives from it in the same "
             "transaction (grading regrades it, or drops its grade when the analysis consent is "
             "gone). Called for the modules enabled in the customer's department; not called by a "
             "bulk import."),
    HookSpec("customers.form_facts", "form_facts(customer) -> [(label, text)]",
             "Lines about the customer for printed forms (the 客户档案表): labels and texts in "
             "Chinese, nothing L2/L3 in clear (grading gives the grade, the register its consents)."),
    HookSpec("customers.rekey", "rekey(customer, old_key, new_key) -> int",
             "The customer's data key is replaced (a field was erased: the old key is destroyed next, "
             "so older copies of the erased value become unreadable). Re-encrypt every value and file "
             "the module keeps under old_key with new_key (crypto.decrypt/encrypt, same AAD); return "
             "how many were re-encrypted. Called for every module, enabled or not, in the transaction. "
             "`kehu keys rotate --crypto` calls it with old_key == new_key: re-encrypt under the "
             "instance's new cipher suite."),
    HookSpec("customers.export_grant", "export_grant(actor, request) -> ExportGrant | None",
             "An export asks to include L2/L3 fields unmasked under the approved request ``request`` "
             "(its id or number): return the grant if it is the actor's, approved and not produced "
             "yet, else None. The export masks without a grant. Called for every module."),
    HookSpec("customers.privacy_notice", "privacy_notice() -> (current version, [published versions]) | None",
             "The privacy notice kept as versioned text by a module: a consent records the version the "
             "customer saw, which must be a published one (the current one by default). Called for every "
             "module; without an answer the version is the setting CUSTOMERS_NOTICE_VERSION."),
)
