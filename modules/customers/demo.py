"""Demo customers for `kehu init --demo`: realistic zh_CN individuals and organisations (Faker)
spread over the demo departments and their sales and service staff, with consents, statuses and
two years of transaction and service records, so that grading, archives and the reports have
something to show.

Everything goes through the register's services, so it is encrypted, indexed and audited like
data typed in by a user. Valid identifiers only: ID numbers from Faker are re-checked with
core.validation; credit codes get a computed check character (python-stdnum)."""
from __future__ import annotations

import datetime
import random
import re

from sqlalchemy import select

from core.api import db, module_setting, validation

from .fields import FIELDS
from .models import Customer

DEFAULT_COUNT = 300
OWNER_ROLES = ("sales", "service")
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
INDUSTRIES = ("制造业", "批发和零售业", "信息传输、软件和信息技术服务业", "建筑业", "金融业", "房地产业",
              "交通运输、仓储和邮政业", "住宿和餐饮业", "租赁和商务服务业", "科学研究和技术服务业",
              "教育", "卫生和社会工作", "文化、体育和娱乐业", "农、林、牧、渔业")
SCOPES = ("技术开发、技术咨询、技术服务；软件开发；计算机系统集成", "批发零售日用百货、五金交电、电子产品",
          "货物进出口；技术进出口", "机械设备制造、销售及维修", "餐饮服务；食品经营",
          "房地产开发经营；物业管理", "道路货物运输；仓储服务", "企业管理咨询；市场营销策划")
PRODUCTS = {
    "person": (("个人理财顾问服务", 800, 12000), ("年度会员", 299, 2999), ("家用净水设备", 1500, 8000),
               ("健康体检套餐", 600, 5000), ("智能手机", 1999, 9999), ("延保服务", 199, 1299)),
    "org": (("企业管理软件授权", 20000, 380000), ("年度运维服务", 12000, 150000), ("办公设备采购", 5000, 220000),
            ("定制开发项目", 80000, 1500000), ("培训服务", 6000, 60000), ("云服务资源包", 10000, 500000)),
}
SERVICES = ("上门安装", "电话回访", "故障维修", "使用培训", "投诉处理", "定期巡检")
TX_CHANNELS = ("store", "online", "phone", "visit", "other")
STATUS_WEIGHTS = (("prospect", 25), ("active", 60), ("lost", 15))
LOST_REASONS = ("转向竞争对手", "预算削减", "联系不上", "业务调整")
CONSENT_CHANNELS = ("paper", "online", "phone", "onsite")


# (province, city, district, ID region code, telephone area code, postcode): the person's ID
# number, address and an organisation's address, landline and postcode come from one place
PLACES = (
    ("北京市", "北京市", "朝阳区", "110105", "010", "100020"),
    ("北京市", "北京市", "海淀区", "110108", "010", "100080"),
    ("上海市", "上海市", "徐汇区", "310104", "021", "200030"),
    ("上海市", "上海市", "浦东新区", "310115", "021", "200120"),
    ("天津市", "天津市", "和平区", "120101", "022", "300041"),
    ("重庆市", "重庆市", "渝中区", "500103", "023", "400010"),
    ("广东省", "广州市", "天河区", "440106", "020", "510630"),
    ("广东省", "深圳市", "南山区", "440305", "0755", "518052"),
    ("浙江省", "杭州市", "西湖区", "330106", "0571", "310013"),
    ("江苏省", "南京市", "玄武区", "320102", "025", "210018"),
    ("江苏省", "苏州市", "姑苏区", "320508", "0512", "215000"),
    ("四川省", "成都市", "武侯区", "510107", "028", "610041"),
    ("湖北省", "武汉市", "武昌区", "420106", "027", "430061"),
    ("山东省", "青岛市", "市南区", "370202", "0532", "266001"),
    ("陕西省", "西安市", "雁塔区", "610113", "029", "710061"),
    ("福建省", "福州市", "鼓楼区", "350102", "0591", "350001"),
)
ROADS = ("建设路", "人民路", "解放路", "中山路", "和平路", "文化路", "新华路", "长江路", "青年路", "光明路")
ESTATES = ("阳光花园", "锦绣家园", "翠湖小区", "金色家园", "绿地公寓", "和谐苑", "幸福里", "东方名苑")
BUILDINGS = ("科技大厦", "国际中心", "商务广场", "创业园", "金融中心", "工业园")


def place_address(rng, place, home=True):
    """A street address in the place: "广东省广州市天河区中山路88号阳光花园3栋2单元502室"."""
    province, city, district = place[:3]
    prefix = province + ("" if city == province else city) + district
    street = f"{rng.choice(ROADS)}{rng.randint(1, 300)}号"
    if home:
        return (f"{prefix}{street}{rng.choice(ESTATES)}{rng.randint(1, 20)}栋{rng.randint(1, 4)}单元"
                f"{rng.randint(1, 30)}{rng.randint(1, 4):02d}室")
    return f"{prefix}{street}{rng.choice(BUILDINGS)}{rng.randint(2, 30)}层"


def id_number_for(rng, place, birth, gender):
    """A valid 18-digit 身份证号 of the place's region, the birth date and the gender (the 17th
    digit is odd for men), with its check character (python-stdnum)."""
    from stdnum.cn import ric
    sequence = rng.randrange(0, 100) * 10 + rng.choice((1, 3, 5, 7, 9) if gender == "M" else (0, 2, 4, 6, 8))
    body = f"{place[3]}{birth:%Y%m%d}{sequence:03d}"
    return body + ric.calc_check_digit(body + "0")


class DemoError(RuntimeError):
    """Demo customers cannot be made (no departments with sales or service staff)."""


def _weighted(rng, pairs):
    values, weights = zip(*pairs, strict=True)
    return rng.choices(values, weights=weights)[0]


def _org_code(rng):
    """A 9-character organisation code (GB 11714) with its check character."""
    body = "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRTUWXY"[:10 if i < 2 else 31]) for i in range(8))
    values = [int(c) if c.isdigit() else ord(c) - 55 for c in body]
    check = 11 - sum(v * w for v, w in zip(values, (3, 7, 9, 10, 5, 8, 4, 2), strict=True)) % 11
    return body + {10: "X", 11: "0"}.get(check, str(check))


def credit_code(rng, region):
    """A valid 统一社会信用代码: "91" (enterprise, company), region, organisation code, check."""
    from stdnum.cn import uscc
    partial = "91" + region + _org_code(rng)
    return partial + uscc.calc_check_digit(partial)


class _Maker:
    def __init__(self, seed=None):
        from faker import Faker
        self.rng = random.Random(seed)
        self.fake = Faker("zh_CN")
        self.fake.seed_instance(self.rng.randrange(2**32))
        self.seen = {"phone": set(), "id_number": set(), "credit_code": set(), "company": set()}
        # what the register holds already (a second run): blind indexes and plain codes
        rows = db.session.execute(select(Customer.phone_bidx, Customer.phone2_bidx, Customer.id_number_bidx,
                                         Customer.credit_code, Customer.company_name)).all()
        self.taken = {"phone": {r[0] for r in rows} | {r[1] for r in rows}, "id_number": {r[2] for r in rows},
                      "credit_code": {r[3] for r in rows}, "company": {r[4] for r in rows}}

    def _clash(self, kind, value):
        if kind in ("phone", "id_number"):
            from core.api import crypto
            return crypto.blind_index(FIELDS[kind].search_domain, value) in self.taken[kind]
        return value in self.taken[kind]

    def _unique(self, kind, make, clean):
        for _attempt in range(50):
            try:
                value = clean(make())
            except validation.ValidationError:
                continue
            if value not in self.seen[kind] and not (self.taken[kind] and self._clash(kind, value)):
                self.seen[kind].add(value)
                return value
        raise DemoError(f"could not make a unique valid {kind}")

    def mobile(self):
        return self._unique("phone", self.fake.phone_number, validation.phone)

    def landline(self, place=None):
        def make():  # area code and an 8-digit local number (all these cities have 8 digits)
            area = place[4] if place else self.rng.choice(("010", "021", "020", "0755", "0571", "028", "027", "025"))
            local = str(self.rng.randrange(2, 10)) + "".join(str(self.rng.randrange(10)) for _ in range(7))
            return area + local
        return self._unique("phone", make, validation.phone)

    def id_number(self):
        return self._unique("id_number", lambda: self.fake.ssn(min_age=18, max_age=80), validation.id_number)

    def address(self):
        return re.sub(r"\s*\d{6}$", "", self.fake.address())  # Faker appends a postcode

    def person(self):
        """Gender and birth date first; the ID number (80%) is made from them and the place of
        birth, the home address mostly in the same city."""
        from stdnum.cn import ric
        fake, rng = self.fake, self.rng
        gender = rng.choice("MF")
        birth = fake.date_of_birth(minimum_age=18, maximum_age=80)
        # a district that had its code in the year of birth (python-stdnum knows since when)
        born_in = [p for p in PLACES if ric.is_valid(id_number_for(rng, p, birth, gender))]
        place = rng.choice(born_in)
        id_number = (self._unique("id_number", lambda: id_number_for(rng, place, birth, gender),
                                  validation.id_number) if rng.random() < 0.8 else None)
        name = fake.name_male() if gender == "M" else fake.name_female()
        data = {"name": name, "gender": gender, "birth_date": birth.isoformat(), "phone": self.mobile()}
        if id_number:
            data["id_number"] = id_number
        if rng.random() < 0.5:
            data["email"] = fake.email()
        if rng.random() < 0.35:
            data["bank_account"] = "62" + "".join(str(rng.randrange(10)) for _ in range(17))
        if rng.random() < 0.75:
            home = place if rng.random() < 0.8 else rng.choice(PLACES)
            data["home_address"] = place_address(rng, home)
        if rng.random() < 0.3:
            relation = rng.choice(("配偶", "父母", "子女", "朋友"))
            data["emergency_contact"] = f"{fake.name()}（{relation}）{fake.phone_number()}"
        if rng.random() < 0.15:
            data["phone2"] = self.mobile()
        return data

    def contact(self):
        data = {"name": self.fake.name(), "title": self.rng.choice(CONTACT_TITLES), "phone": self.mobile()}
        if self.rng.random() < 0.6:
            data["email"] = self.fake.company_email()
        return data

    def organisation(self):
        fake, rng = self.fake, self.rng
        place = rng.choice(PLACES)
        city = place[1].removesuffix("市")
        company = self._unique("company", lambda: city + fake.company(), lambda v: v)
        region = place[3]
        data = {
            "company_name": company,
            "credit_code": self._unique("credit_code", lambda: credit_code(rng, region),
                                        validation.credit_code),
            "legal_rep": fake.name(),
            "company_address": place_address(rng, place, home=False),
            "postcode": place[5],
            "phone": self.landline(place) if rng.random() < 0.6 else self.mobile(),
            "industry": rng.choice(INDUSTRIES),
        }
        if rng.random() < 0.7:
            data["business_scope"] = rng.choice(SCOPES)
        if rng.random() < 0.5:
            data["credit_rating"] = rng.choice(("AAA", "AA", "A", "BBB", "BB"))
        if rng.random() < 0.3:
            data["fax"] = self.landline(place)
        return data


CONTACT_TITLES = ("总经理", "采购经理", "财务主管", "行政主管", "技术负责人", "项目经理")


def _owners_by_department(departments, users):
    owners = {}
    for user in users:
        if user.role in OWNER_ROLES and user.active and user.department_id is not None:
            owners.setdefault(user.department_id, []).append(user)
    return [(d, owners[d.id]) for d in departments if owners.get(d.id)]


def create(departments, users, *, count=None, seed=None):
    """Create ``count`` customers (default: config CUSTOMERS_DEMO_COUNT, else 300) spread over
    ``departments`` and their sales/service users. Returns a one-line summary; the caller commits."""

    from . import services
    if count is None:
        count = int(module_setting("customers", "demo_count", DEFAULT_COUNT))
    from .fields import SOURCES
    places = _owners_by_department(departments, users)
    if not places:
        raise DemoError("no department has an active sales or service user")
    maker = _Maker(seed)
    rng = maker.rng
    today = datetime.date.today()
    totals = {"customers": 0, "contacts": 0, "consents": 0, "records": 0}
    for i in range(count):
        department, owners = places[i % len(places)]
        owner = rng.choice(owners)
        kind = "person" if rng.random() < 0.7 else "org"
        data = maker.person() if kind == "person" else maker.organisation()
        status = _weighted(rng, STATUS_WEIGHTS)
        data.update(kind=kind, status="prospect" if status == "prospect" else "active",
                    source=rng.choice(list(SOURCES)))
        if rng.random() < 0.3:
            data["tags"] = rng.choice(("重点客户", "老客户", "价格敏感", "需开发票", "周末联系"))
        if rng.random() < 0.25:
            data["notes"] = rng.choice(("重点跟进，季度回访", "对价格敏感", "需要增值税专用发票", "周末方便联系",
                                        "老客户介绍"))
        sensitive = bool(data.get("id_number") or data.get("bank_account"))
        channel = rng.choice(CONSENT_CHANNELS)
        consent = {"purposes": ["service", "contract"] + (["analysis"] if rng.random() < 0.6 else []),
                   "channel": channel, "sensitive": sensitive,
                   "scope": "基本信息、联系方式" + ("、身份证号、银行账号" if sensitive else "")}
        customer = services.create_customer(owner, data, owner=owner, department=department, consent=consent)
        totals["customers"] += 1
        totals["consents"] += 1
        if kind == "org":
            for _n in range(rng.randint(1, 3)):
                services.add_contact(owner, customer, maker.contact())
                totals["contacts"] += 1
        colleagues = [u for u in owners if u.id != owner.id]
        if colleagues and rng.random() < 0.08:
            services.share_customer(owner, customer, rng.choice(colleagues))
        if rng.random() < 0.45:
            marketing = services.record_consent(owner, customer, ["marketing"], "接收产品与活动信息", channel)
            totals["consents"] += 1
            if rng.random() < 0.12:
                services.withdraw_consent(owner, marketing, "客户来电要求不再接收营销信息")
        if status == "prospect":
            continue
        if status == "lost":
            services.change_status(owner, customer, "lost", rng.choice(LOST_REASONS))
        for _n in range(rng.randint(1, 8 if kind == "org" else 4)):
            product, low, high = rng.choice(PRODUCTS[kind])
            services.add_transaction(owner, customer, {
                "kind": "transaction", "product": product, "amount": f"{rng.randint(low, high)}.00",
                "occurred_on": today - datetime.timedelta(days=rng.randint(0, 729)),
                "channel": rng.choice(TX_CHANNELS)})
            totals["records"] += 1
        for _n in range(rng.randint(0, 2)):
            services.add_transaction(owner, customer, {
                "kind": "service", "product": rng.choice(SERVICES),
                "occurred_on": today - datetime.timedelta(days=rng.randint(0, 729)),
                "channel": rng.choice(TX_CHANNELS)})
            totals["records"] += 1
    db.session.flush()
    return (f"{totals['customers']} customers in {len(places)} departments, {totals['contacts']} contacts, "
            f"{totals['consents']} consents, {totals['records']} transaction and service records")
