"""`make bench`: kehu's customer pages at 10k and 100k customers (1M with --million) against a bare
Flask + SQLAlchemy + Jinja baseline measured in the same run, import against a raw executemany,
and PDF rendering against bare WeasyPrint. Targets are reported, never asserted.

    .venv/bin/python bench/bench.py [--sizes 10000,100000] [--million] [--seconds 10]
        [--database postgresql+psycopg://postgres@127.0.0.1:5432/test]

For each size the customers are seeded through the real import path (`kehu import customers`,
CSV with Chinese headers, ≤ 50,000 rows a file, all or nothing per file) on top of the previous
size, and the same rows go into a plain table with one executemany per file. Then kehu is served
with ``gunicorn -w 2`` and a second process (wrk, or bench/driver.py without it) loads each page
for --seconds on 127.0.0.1 with the session cookie of a signed-in user; then the baseline app is
served the same way on the plain table.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import hmac
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, USER_AGENT, Client, Instance, Server, customer_row, log, reset_postgres, write_csv  # noqa: E402

BENCH = Path(__file__).resolve().parent
FILE_ROWS = 50_000  # the import's own per-file limit (modules/customers/io.py MAX_ROWS)
DEPARTMENTS = (("BENCH1", "基准一部"), ("BENCH2", "基准二部"))
SALES_PER_DEPT = 10


def human(n):
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else \
        f"{n // 1000}k" if n % 1000 == 0 else str(n)


# --- seeding ------------------------------------------------------------------------------------

def owners():
    out = {}
    for d, (code, _name) in enumerate(DEPARTMENTS):
        out[code] = [f"s{d * SALES_PER_DEPT + k + 1:02d}" for k in range(SALES_PER_DEPT)]
    return out


def set_up(instance):
    instance.init()
    for code, name in DEPARTMENTS:
        instance.department(code, name)
    users = []
    for d, (code, _name) in enumerate(DEPARTMENTS):
        users.append((f"head{d + 1}", "head", code))
        users += [(name, "sales", code) for name in owners()[code]]
    instance.users(users)


def cli_startup(instance):
    """Seconds the `kehu` command needs to start and stop (taken off each import's wall time)."""
    times = []
    for _ in range(3):
        t = time.perf_counter()
        instance.kehu("departments", "list")
        times.append(time.perf_counter() - t)
    return min(times)


def seed(instance, start, stop, plain, startup):
    """Import customers start..stop-1 (half per department, ≤ FILE_ROWS per file), then the same
    rows into the plain table. Returns (import seconds net of CLI start-up, raw seconds, files)."""
    by_owner = owners()
    files = []
    for d, (code, _name) in enumerate(DEPARTMENTS):
        mine = [i for i in range(start, stop) if i % len(DEPARTMENTS) == d]
        team = by_owner[code]
        for k in range(0, len(mine), FILE_ROWS):
            rows = [customer_row(i, team[(i // len(DEPARTMENTS)) % len(team)]) for i in mine[k:k + FILE_ROWS]]
            path = instance.workdir / f"import-{code}-{mine[k]}.csv"
            write_csv(path, rows)
            files.append((f"head{d + 1}", path, rows))
    import_seconds = 0.0
    for n, (head, path, rows) in enumerate(files, 1):
        t = time.perf_counter()
        instance.kehu("import", "customers", path, "--as", head, "--consent-channel", "paper", "-q")
        took = time.perf_counter() - t
        import_seconds += max(took - startup, 1e-6)
        log(f"    imported {path.name}: {len(rows)} rows in {took:.1f} s "
            f"({len(rows) / max(took - startup, 1e-6):.0f} rows/s) [{n}/{len(files)}]")
        path.unlink()
    raw_seconds = sum(plain.insert(rows) for _head, _path, rows in files)
    crypto_seconds = crypto_floor([row for _h, _p, rows in files for row in rows[:2000]])
    crypto_per_row = crypto_seconds / min(sum(len(r) for _h, _p, r in files), 2000 * len(files))
    return import_seconds, raw_seconds, crypto_per_row


def crypto_floor(rows):
    """Seconds for the crypto alone of these rows as kehu stores them: a fresh AES-256 data key,
    wrapped under a master key, the personal fields sealed with AES-GCM, HMAC blind indexes."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    kek, index_key = AESGCM(AESGCM.generate_key(256)), os.urandom(32)
    t = time.perf_counter()
    for _kind, name, mobile, id_number, _credit, address, _owner in rows:
        dek = AESGCM.generate_key(256)
        kek.encrypt(os.urandom(12), dek, b"kek")
        sealer = AESGCM(dek)
        for value in (name, mobile, id_number, address):
            if value:
                sealer.encrypt(os.urandom(12), value.encode(), b"customers_customer|f|uid")
        for value in (name, mobile, id_number):
            if value:
                hmac.new(index_key, value.encode(), hashlib.sha256).digest()
    return time.perf_counter() - t


class PlainTable:
    """The bare table of the baseline, filled with one executemany per import file."""

    DDL = ("CREATE TABLE bench_plain (id INTEGER PRIMARY KEY, kind VARCHAR(8), name VARCHAR(200), "
           "phone VARCHAR(32), id_number VARCHAR(18), credit_code VARCHAR(18), home_address VARCHAR(300), "
           "owner VARCHAR(64))")
    DDL_PG = DDL.replace("id INTEGER PRIMARY KEY", "id SERIAL PRIMARY KEY")

    def __init__(self, url):
        from sqlalchemy import create_engine, event
        self.url = url
        self.engine = create_engine(url)
        if url.startswith("sqlite"):
            @event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_connection, record):  # as kehu's own SQLite (core/db.py)
                cur = dbapi_connection.cursor()
                cur.execute("PRAGMA journal_mode = WAL")
                cur.execute("PRAGMA synchronous = NORMAL")
                cur.close()
        with self.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS bench_plain")
            conn.exec_driver_sql(self.DDL if url.startswith("sqlite") else self.DDL_PG)

    def insert(self, rows):
        mark = "?" if self.url.startswith("sqlite") else "%s"
        sql = (f"INSERT INTO bench_plain (kind, name, phone, id_number, credit_code, home_address, owner) "
               f"VALUES ({', '.join([mark] * 7)})")
        raw = self.engine.raw_connection()
        try:
            t = time.perf_counter()
            cur = raw.cursor()
            cur.executemany(sql, rows)
            raw.commit()
            return time.perf_counter() - t
        finally:
            raw.close()


# --- load ---------------------------------------------------------------------------------------

WRK_LINE = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)


def _seconds(value, unit):
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]


def drive(url, cookie, seconds, connections, driver):
    """Load one URL from a second process; returns {rps, p50, p99, requests, non_200, errors}."""
    headers = [f"User-Agent: {USER_AGENT}", "Accept-Language: zh-CN"]
    if cookie:
        headers.append(f"Cookie: {cookie}")
    if driver == "wrk":
        cmd = ["wrk", "-t", str(min(2, connections)), "-c", str(connections), "-d", f"{seconds:g}s", "--latency",
               "--timeout", "30s", "-s", str(BENCH / "wrk_status.lua")]
        for h in headers:
            cmd += ["-H", h]
        out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=seconds + 120).stdout
        rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
        total = re.search(r"(\d+) requests in", out)
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        pct = {int(p): _seconds(v, u) for p, v, u in WRK_LINE.findall(out)}
        non200 = re.search(r"NON_200 (\d+)", out)
        if not rps or 50 not in pct:
            raise RuntimeError(f"cannot read wrk's output:\n{out}")
        return {"rps": float(rps.group(1)), "p50": pct[50], "p99": pct.get(99, float("nan")),
                "requests": int(total.group(1)) if total else 0,
                "non_200": int(non200.group(1)) if non200 else 0,
                "errors": sum(map(int, errors.groups())) if errors else 0}
    cmd = [sys.executable, str(BENCH / "driver.py"), url, "--seconds", str(seconds),
           "--connections", str(connections)]
    for h in headers:
        cmd += ["--header", h]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(server, path, cookie, args, check=None):
    """Check the page answers 200 (and holds ``check``), warm up, then load it for --seconds."""
    client = Client(server.port)
    if cookie:
        client.cookies = dict(part.split("=", 1) for part in cookie.split("; "))
    resp = client.get(path)
    if resp.status != 200 or (check and check not in resp.text):
        raise RuntimeError(f"GET {path} answered {resp.status} {resp.location or ''} without {check!r}: "
                           f"{resp.text[:300]}")
    client.close()
    url = server.base + path
    drive(url, cookie, args.warmup, args.connections, args.driver)
    result = drive(url, cookie, args.seconds, args.connections, args.driver)
    result["bytes"] = len(resp.body)
    if result["non_200"] or result["errors"]:
        log(f"    WARNING: {path}: {result['non_200']} answers other than 200, {result['errors']} socket errors")
    return result


def pick_targets(instance, username):
    """(customer id, number, phone digits) of a person customer owned by ``username``."""
    from sqlalchemy import select

    from core.db import db
    from core.models import User
    from modules.customers.models import Customer
    with instance.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        c = db.session.scalar(select(Customer).where(Customer.owner_id == user.id, Customer.kind == "person")
                              .order_by(Customer.id.desc()).limit(1))
        return c.id, c.number, re.sub(r"\D", "", c.phone)[-11:]


def serve_and_measure(instance, plain_url, size, args, workdir):
    results = {}
    customer_id, number, mobile = pick_targets(instance, "s01")
    with Server("core:create_app()", instance.env, workdir / f"kehu-{size}.log", workers=args.workers) as srv:
        sales, head = Client(srv.port), Client(srv.port)
        sales.login("s01")
        head.login("head1")
        pages = (
            ("list (sales)", "/customers/", sales, None),
            ("list (head)", "/customers/", head, None),
            ("detail", f"/customers/{customer_id}", sales, number),
            ("search phone", f"/customers/?q={mobile}", sales, number),
        )
        for label, path, client, check in pages:
            results[label] = measure(srv, path, client.session_cookie, args, check)
            log(f"    {label:<14} {results[label]['rps']:8.1f} req/s")
        problems = srv.log_problems()
    if problems:
        log(f"    server log problems: {problems[:5]}")
    env = dict(instance.env, BASELINE_DATABASE_URL=plain_url)
    with Server("baseline:create_app()", env, workdir / f"baseline-{size}.log", workers=args.workers,
                chdir=BENCH) as base:
        results["baseline list"] = measure(base, "/", None, args, "<tbody>")
        log(f"    {'baseline list':<14} {results['baseline list']['rps']:8.1f} req/s")
    return results


# --- PDF ----------------------------------------------------------------------------------------

PDF_ROWS = (("客户编号", "KH-2026-000123"), ("姓名", "张三丰"), ("性别", "男"), ("出生日期", "1980-05-17"),
            ("手机", "138****8000"), ("身份证号", "110***********1234"), ("家庭住址", "北京市朝阳区****"),
            ("电子邮箱", "zhangsan@example.com"), ("客户类型", "个人"), ("状态", "在册"),
            ("负责人", "李娜（销售一部）"), ("来源", "转介绍"), ("完整度", "83%"),
            ("同意记录", "提供产品与服务、订立和履行合同（纸质签字，含敏感个人信息单独同意）"))


def pdf_html():
    rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in PDF_ROWS)
    records = "".join(f"<tr><td>2026-0{m}-1{m}</td><td>交易记录</td><td>企业版年度服务 第{m}期</td>"
                      f"<td>¥{m * 1280:,}.00</td><td>线上</td></tr>" for m in range(1, 9))
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>客户基本信息表</title>
<link rel="stylesheet" href="kehu-asset:/pdf.css"></head><body>
<div class="pdf-header"><span class="pdf-company">kehu 示例有限公司</span><span class="pdf-doc-title">客户基本信息表</span></div>
<div class="pdf-footer"><span class="pdf-printed">打印时间：2026-11-27 10:00</span>
<span class="pdf-pages">第 <span class="pdf-page-number"></span> 页 / 共 <span class="pdf-page-count"></span> 页</span></div>
<main><h1>客户基本信息表</h1>
<table class="pdf-kv">{rows}</table>
<h2>最近交易与服务记录</h2>
<table class="pdf-data"><thead><tr><th>日期</th><th>类型</th><th>产品或服务</th><th>金额</th><th>渠道</th></tr></thead>
<tbody>{records}</tbody></table>
<p>本表依据《客户信息管理制度》填写。敏感个人信息已按规定遮蔽；查看原文须经授权并记入审计日志。</p>
<p><b>客户签字：</b>＿＿＿＿＿＿　　<b>经办人：</b>＿＿＿＿＿＿　　<b>日期：</b>＿＿＿＿年＿＿月＿＿日</p>
</main></body></html>"""


def bare_html(html):
    """The same document for bare WeasyPrint: pdf.css inlined without its @font-face rules, so the
    CJK font comes from fontconfig ("Noto Sans CJK SC") instead of kehu's allow-list fetcher."""
    css = (ROOT / "core" / "pdf_assets" / "pdf.css").read_text(encoding="utf-8")
    css = re.sub(r"@font-face\s*{[^}]*}", "", css)
    return html.replace('<link rel="stylesheet" href="kehu-asset:/pdf.css">', f"<style>{css}</style>")


def pdf_pages(data):
    try:
        from pypdf import PdfReader
        return len(PdfReader(io.BytesIO(data)).pages)
    except ImportError:
        return data.count(b"/Type /Page") - data.count(b"/Type /Pages")


def bench_pdf(runs):
    """Run in a child process (WeasyPrint's first import is slow and its caches are global)."""
    code = f"""
import json, sys, time
sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(BENCH)!r})
from bench import pdf_html, bare_html, pdf_pages
html = pdf_html()
out = {{}}
from core import pdf
t = time.perf_counter(); data = pdf.render_html_to_pdf(html); first = time.perf_counter() - t
out["kehu"] = dict(first=first, times=[], pages=pdf_pages(data), size=len(data))
import weasyprint
bare = bare_html(html)
t = time.perf_counter(); data = weasyprint.HTML(string=bare).write_pdf(); first = time.perf_counter() - t
out["bare"] = dict(first=first, times=[], pages=pdf_pages(data), size=len(data))
# the warm runs alternate, so that the machine's speed moving during the runs weighs on both alike
for _ in range({runs}):
    t = time.perf_counter(); pdf.render_html_to_pdf(html); out["kehu"]["times"].append(time.perf_counter() - t)
    t = time.perf_counter(); weasyprint.HTML(string=bare).write_pdf(); out["bare"]["times"].append(time.perf_counter() - t)
print(json.dumps(out))
"""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=900,
                          cwd=str(ROOT))
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def server_pdf(instance, workdir, args, runs=6):
    """The PDF a user gets from a server that has just started: the archives module installed and
    enabled for the first department, gunicorn started as for the pages, and as soon as it answers
    /healthz s01 signs in and prints a customer's archive form (客户档案表), then prints it again.
    Returns the seconds of each print, the first one first."""
    instance.kehu("modules", "install", "archives")
    instance.kehu("modules", "enable", "archives", "--department", DEPARTMENTS[0][0])
    customer_id, number, _mobile = pick_targets(instance, "s01")
    times = []
    with Server("core:create_app()", instance.env, workdir / "kehu-pdf.log", workers=args.workers) as srv:
        client = Client(srv.port)
        client.login("s01")
        for _ in range(runs):
            resp = client.get(f"/archives/{customer_id}/form.pdf")
            if resp.status != 200 or not resp.body.startswith(b"%PDF"):
                raise RuntimeError(f"the archive form answered {resp.status}: {resp.text[:300]}")
            times.append(resp.elapsed)
        client.close()
    return times


# --- report -------------------------------------------------------------------------------------

def norm_growth(loads, first, size, label):
    """Cost growth of a page from ``first`` to ``size`` in units of the baseline's cost at each size."""
    at = {n: loads[n][label]["rps"] / loads[n]["baseline list"]["rps"] for n in (first, size)}
    return at[first] / at[size]


def report(args, backend, sizes, imports, loads, pdf, started):
    first = sizes[0]
    print(f"\n== kehu bench · {datetime.date.today()} · {backend} · gunicorn -w {args.workers} on 127.0.0.1 · "
          f"{args.driver} {args.connections} connections × {args.seconds:g} s per page "
          f"(+{args.warmup:g} s warm-up) · {os.cpu_count()} cores ==")
    print(f"load average at start / end: {args.load_before:.1f} / {os.getloadavg()[0]:.1f} "
          "(anything above ~0.5 means other work shared the cores)")
    print("\nImport through `kehu import customers` (CSV, ≤50k rows a file, net of CLI start-up) "
          "vs raw executemany of the same rows into a bare table")
    print(f"{'size':>6} {'rows':>8} {'import s':>9} {'rows/s':>8} {'raw s':>7} {'raw rows/s':>11} "
          f"{'import/raw':>10} {'crypto ms/row':>13} {'import ms/row':>13}")
    for size in sizes:
        rows, imp, raw, crypto = imports[size]
        print(f"{human(size):>6} {rows:>8} {imp:>9.1f} {rows / imp:>8.0f} {raw:>7.2f} {rows / raw:>11.0f} "
              f"{raw / imp:>9.4f}× {crypto * 1000:>13.3f} {imp / rows * 1000:>13.3f}")
    print("\nPages (req/s and latency under load; ×baseline = req/s ÷ baseline req/s at the same size; "
          f"cost ×{human(first)} = (1/req/s) ÷ (1/req/s at {human(first)}); norm. = the same growth "
          "measured in units of the baseline's cost at each size, which cancels a change in machine load "
          "between sizes)")
    print(f"{'page':<15}{'size':>6}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'×baseline':>11}"
          f"{'cost ×' + human(first):>12}{'norm. ×' + human(first):>12}{'p50 ×' + human(first):>11}{'KiB':>7}"
          f"{'non-200':>9}")
    for label in ("baseline list", "list (sales)", "list (head)", "detail", "search phone"):
        for size in sizes:
            r = loads[size][label]
            base = loads[size]["baseline list"]["rps"]
            r0 = loads[first][label]
            print(f"{label:<15}{human(size):>6}{r['rps']:>9.1f}{r['p50'] * 1000:>9.1f}{r['p99'] * 1000:>9.1f}"
                  f"{r['rps'] / base:>10.2f}×{r0['rps'] / r['rps']:>11.2f}×{norm_growth(loads, first, size, label):>11.2f}×"
                  f"{r['p50'] / r0['p50']:>10.2f}×"
                  f"{r['bytes'] / 1024:>7.1f}{r['non_200'] + r['errors']:>9}")
    if pdf:
        k, b = pdf["kehu"], pdf["bare"]
        km, bm = statistics.median(k["times"]), statistics.median(b["times"])
        print(f"\nPDF, one-page Chinese form ({len(k['times'])} runs each, alternating, median; first call apart)")
        print(f"  core.pdf.render_html_to_pdf: {km * 1000:7.1f} ms  (first {k['first'] * 1000:.0f} ms; "
              f"{k['pages']} page, {k['size'] / 1024:.0f} KiB)")
        print(f"  bare weasyprint write_pdf:   {bm * 1000:7.1f} ms  (first {b['first'] * 1000:.0f} ms; "
              f"{b['pages']} page, {b['size'] / 1024:.0f} KiB)")
        print(f"  kehu / bare: {km / bm:.2f}×")
        if pdf.get("server"):
            printed, rest = pdf["server"][0], pdf["server"][1:]
            print(f"  archive form from a server just started (gunicorn, asked right after /healthz and sign-in): "
                  f"first {printed * 1000:.0f} ms, then {statistics.median(rest) * 1000:.0f} ms (median of {len(rest)})")
    last = sizes[-1]
    print("\nTargets of issue 15 (reported, not asserted)")
    for label, want in (("list (sales)", 0.5), ("list (head)", 0.5), ("detail", 0.3), ("search phone", 0.3)):
        ratio = loads[last][label]["rps"] / loads[last]["baseline list"]["rps"]
        print(f"  {label} ≥ {want}× baseline at {human(last)}: {ratio:.2f}× — {'met' if ratio >= want else 'SHORT'}")
    for label in ("list (sales)", "list (head)", "detail", "search phone"):
        growth = loads[first][label]["rps"] / loads[last][label]["rps"]
        norm = norm_growth(loads, first, last, label)
        print(f"  {label} cost growth {human(first)}→{human(last)} ≤ 1.2×: {growth:.2f}× (normalised {norm:.2f}×) — "
              f"{'met' if max(growth, norm) <= 1.2 else 'SHORT'}" + ("" if last >= 1_000_000 else " (target is to 1M)"))
    tail = max(loads[size][label]["p99"] / loads[size][label]["p50"] for size in sizes for label in loads[size]
               if label != "baseline list")
    print(f"  p99 ≤ 10× p50 on every page at every size: at most {tail:.1f}× — {'met' if tail <= 10 else 'SHORT'}")
    total_rows = sum(imports[s][0] for s in sizes)
    imp = sum(imports[s][1] for s in sizes)
    rate = total_rows / imp
    crypto = sum(imports[s][3] * imports[s][0] for s in sizes) / total_rows  # seconds a row
    floor = crypto / (imp / total_rows)
    print(f"  import ≥ 5,000 rows/s: {rate:.0f} rows/s over all sizes "
          f"({', '.join(f'{human(s)} {imports[s][0] / imports[s][1]:.0f}' for s in sizes)}) — "
          f"{'met' if rate >= 5000 else 'SHORT'}")
    print(f"  import ≥ 0.2× the crypto floor: {floor:.3f}× ({crypto * 1000:.3f} of {imp / total_rows * 1000:.3f} ms a row) — "
          f"{'met' if floor >= 0.2 else 'SHORT'}")
    if pdf:
        k, b = pdf["kehu"], pdf["bare"]
        ratio = statistics.median(k["times"]) / statistics.median(b["times"])
        print(f"  PDF warm ≤ 1.15× bare WeasyPrint: {ratio:.2f}× — {'met' if ratio <= 1.15 else 'SHORT'}")
        if pdf.get("server"):
            printed = pdf["server"][0]
            print(f"  first PDF after a server's start < 1 s: {printed * 1000:.0f} ms — {'met' if printed < 1 else 'SHORT'} "
                  f"(in a new process that loads WeasyPrint for it: {k['first'] * 1000:.0f} ms)")
        else:
            print(f"  first render < 1 s (a new process that loads WeasyPrint for it): {k['first'] * 1000:.0f} ms — "
                  f"{'met' if k['first'] < 1 else 'SHORT'}")
    print(f"\nwall time {time.perf_counter() - started:.0f} s")


# --- main ---------------------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="customer counts, ascending (default 10000,100000)")
    parser.add_argument("--million", action="store_true", help="add 1,000,000 to the sizes")
    parser.add_argument("--seconds", type=float, default=10, help="load per page, s (default 10)")
    parser.add_argument("--warmup", type=float, default=2, help="warm-up per page, s (default 2)")
    parser.add_argument("--connections", type=int, default=4, help="concurrent connections (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--driver", choices=("wrk", "python"), default=None,
                        help="load generator (default wrk when installed)")
    parser.add_argument("--database", default=None, help="database URL (default SQLite in a temp folder)")
    parser.add_argument("--pdf-runs", type=int, default=10)
    parser.add_argument("--no-pdf", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--force-reset", action="store_true")
    args = parser.parse_args(argv)
    sizes = sorted({int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()})
    if args.million:
        sizes = sorted(set(sizes) | {1_000_000})
    if not sizes or sizes[0] < 100 or not 1 <= args.seconds <= 120:
        parser.error("sizes must be ≥ 100 and --seconds between 1 and 120")
    args.driver = args.driver or ("wrk" if shutil.which("wrk") else "python")
    backend = "PostgreSQL" if (args.database or "").startswith("postgresql") else "SQLite"
    started = time.perf_counter()
    args.load_before = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="kehu-bench-"))
    log(f"kehu bench: sizes {', '.join(map(human, sizes))}, {backend}, driver {args.driver}; work folder {workdir}")
    try:
        if args.database and args.database.startswith("postgresql"):
            reset_postgres(args.database, force=args.force_reset)
        instance = Instance(workdir, args.database)
        set_up(instance)
        startup = cli_startup(instance)
        log(f"  `kehu` start-up: {startup:.2f} s (taken off each import's time)")
        plain_url = args.database or f"sqlite:///{workdir / 'plain.db'}"
        plain = PlainTable(plain_url)
        imports, loads, done = {}, {}, 0
        finished = []
        for size in sizes:
            try:
                log(f"  seeding to {human(size)} …")
                imp, raw, crypto = seed(instance, done, size, plain, startup)
                imports[size] = (size - done, imp, raw, crypto)
                done = size
                log(f"  measuring at {human(size)} …")
                loads[size] = serve_and_measure(instance, plain_url, size, args, workdir)
            except Exception as exc:  # report what was measured before the failure
                log(f"  FAILED at {human(size)}: {type(exc).__name__}: {exc}")
                failed = True
                break
            finished.append(size)
            if size != sizes[-1]:
                with contextlib.redirect_stdout(sys.stderr):  # figures so far, should a later size fail
                    report(args, backend, finished, imports, loads, None, started)
        else:
            failed = False
        sizes = finished
        plain.engine.dispose()
        if not sizes:
            return 1
        pdf = None
        if not args.no_pdf:
            log("  PDF …")
            pdf = bench_pdf(args.pdf_runs)
            pdf["server"] = server_pdf(instance, workdir, args)
        report(args, backend, sizes, imports, loads, pdf, started)
        if failed:
            return 1
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
