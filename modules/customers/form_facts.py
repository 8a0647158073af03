"""The customer register's contribution to the hook customers.form_facts: the customer's consent
records, for the printed forms of other modules (客户档案表). Chinese: printed forms are Chinese
documents."""
from core.api import to_local

from .fields import CHANNELS, PURPOSES


def consent_facts(customer):
    """One ("同意记录", text) line per consent record, oldest first, with its state."""
    facts = []
    for consent in customer.consents:
        purposes = "、".join(PURPOSES.get(p, {}).get("zh_CN", p) for p in consent.purpose_list)
        kind = "单独同意（敏感个人信息）" if consent.sensitive else "同意"
        when = to_local(consent.recorded_at).strftime("%Y-%m-%d")
        channel = CHANNELS.get(consent.channel, {}).get("zh_CN", consent.channel)
        text = f"{kind}：{purposes}；{when}，{channel}"
        if consent.withdrawn_at is not None:
            text += f"；已于 {to_local(consent.withdrawn_at).strftime('%Y-%m-%d')} 撤回"
        else:
            text += "；有效"
        facts.append(("同意记录", text))
    return facts
