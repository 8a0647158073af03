"""Shared helpers of `make load` and `make bench`: a throw-away kehu instance driven through the real
`kehu` CLI, gunicorn on a free loopback port, a small cookie-keeping HTTP client on the standard
library, an HTML form reader, and a generator of valid Chinese customer rows (身份证号 with its
check digit and a real region code, mobile numbers, 统一社会信用代码), all unique by construction.

Nothing here talks to anything but 127.0.0.1.
"""
from __future__ import annotations

import contextlib
import csv
import datetime
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
if str(ROOT) not in sys.path:  # this tree's core and modules, even when run from a copy of it
    sys.path.insert(0, str(ROOT))
USER_AGENT = "kehu-bench/1"  # the same on every request: Flask-Login's "strong" session protection
PASSWORD = "Bench-Pass-2026!"  # every bench user's password (CLI reads it from stdin)


def log(message):
    print(message, file=sys.stderr, flush=True)


# --- the instance -------------------------------------------------------------------------------

def reset_postgres(url, *, force=False):
    """DROP SCHEMA public CASCADE; CREATE SCHEMA public — after checking that nobody else is
    connected to that database (someone's test run would be wrecked mid-way). A database that
    does not exist yet (a new machine) is created."""
    from sqlalchemy import create_engine, text
    from sqlalchemy_utils import create_database, database_exists
    if not database_exists(url):
        create_database(url)
        return
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            others = conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()")).scalar()
            if others and not force:
                raise SystemExit(f"{others} other session(s) are connected to {url.rsplit('/', 1)[-1]}; "
                                 "refusing to drop its schema (pass --force-reset to do it anyway)")
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


_BOOT = ("import sys; from flask.cli import ScriptInfo; from core.cli import main, _make_app; sys.argv[0] = 'kehu'; "
         "main(obj=ScriptInfo(create_app=_make_app, set_debug_flag=False, load_dotenv_defaults=False))")


class Instance:
    """A kehu instance in ``workdir/instance``, set up and changed through the `kehu` command."""

    def __init__(self, workdir, database_url=None):
        self.workdir = Path(workdir)
        self.path = self.workdir / "instance"
        self.database_url = database_url
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KEHU_", "FLASK_"))}
        env.update(KEHU_INSTANCE=str(self.path), PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
        if database_url:
            env["KEHU_DATABASE_URL"] = database_url
        self.env = env

    @property
    def url(self):
        return self.database_url or f"sqlite:///{self.path / 'kehu.db'}"

    _console_script_ok = True

    def kehu(self, *args, input=None, check=True):
        """Run `kehu ARGS` (the console script). Should the script fail to find the app for a
        module's command (core/cli.py resolves the subcommand before its group callback sets
        ctx.obj), the same click command is run with that ScriptInfo passed in, and a note logged."""
        exe = BIN / "kehu"
        cmd = [str(exe)] if exe.exists() and Instance._console_script_ok else [sys.executable, "-c", _BOOT]
        proc = subprocess.run(cmd + [str(a) for a in args], input=input, capture_output=True, text=True,
                              env=self.env, cwd=str(ROOT), timeout=6 * 3600)
        if proc.returncode != 0 and "Could not locate a Flask application" in proc.stderr \
                and Instance._console_script_ok:
            log("  note: the `kehu` console script cannot find the app for module commands; running "
                "core.cli.main with its ScriptInfo passed in instead")
            Instance._console_script_ok = False
            return self.kehu(*args, input=input, check=check)
        if check and proc.returncode != 0:
            raise RuntimeError(f"kehu {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                               f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
        return proc

    def init(self):
        self.path.mkdir(parents=True, exist_ok=True)
        return self.kehu("init")

    def department(self, code, name):
        return self.kehu("departments", "create", code, name)

    def user(self, username, role, department):
        return self.kehu("users", "create", username, "--role", role, "--department", department,
                         input=PASSWORD + "\n")

    def users(self, specs, parallel=2):
        """Create users [(username, role, department)] with a few CLI processes at a time."""
        pending = list(specs)
        running = []
        exe = BIN / "kehu"
        while pending or running:
            while pending and len(running) < parallel:
                username, role, dept = pending.pop(0)
                p = subprocess.Popen([str(exe), "users", "create", username, "--role", role,
                                      "--department", dept], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=self.env, cwd=str(ROOT))
                p.stdin.write(PASSWORD + "\n")
                p.stdin.close()
                p.stdin = None  # written and closed: communicate() must not flush it again
                running.append((username, p))
            username, p = running.pop(0)
            out, err = p.communicate(timeout=600)
            if p.returncode != 0:
                raise RuntimeError(f"kehu users create {username} failed:\n{out}\n{err[-2000:]}")

    def users_in_one_process(self, specs):
        """Create users [(username, role, department code)] in one process through
        core.services.create_user, the service behind `kehu users create` (same checks, same
        password hash, same audit entry), without a process start per user."""
        with self.app_context():
            import getpass

            from core import services
            from core.db import db
            for username, role, dept in specs:
                services.create_user(f"cli:{getpass.getuser()}", username, PASSWORD, role,
                                     services.department_by_code(dept) if dept else None)
            db.session.commit()

    @contextlib.contextmanager
    def app_context(self):
        """The real app, in this process, on this instance (for checks after the server stopped)."""
        saved = {k: os.environ.get(k) for k in ("KEHU_INSTANCE", "KEHU_DATABASE_URL")}
        os.environ["KEHU_INSTANCE"] = str(self.path)
        if self.database_url:
            os.environ["KEHU_DATABASE_URL"] = self.database_url
        else:
            os.environ.pop("KEHU_DATABASE_URL", None)
        try:
            if str(ROOT) not in sys.path:
                sys.path.insert(0, str(ROOT))
            from core.app import create_app
            app = create_app()
            with app.app_context():
                yield app
                from core.db import db
                db.session.remove()
                db.engine.dispose()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


# --- serving ------------------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    """``gunicorn -w N -b 127.0.0.1:<free port> APP`` in its own process group, stopped by its pid."""

    def __init__(self, app_spec, env, logfile, workers=2, chdir=None, extra=()):
        self.app_spec, self.env, self.logfile = app_spec, env, Path(logfile)
        self.workers, self.chdir, self.extra = workers, chdir or ROOT, list(extra)
        self.port = free_port()
        self.proc = None

    def __enter__(self):
        gunicorn = BIN / "gunicorn"
        if not gunicorn.exists():
            raise SystemExit("gunicorn is not installed in this venv (pip install -e '.[test]')")
        self._log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(
            [str(gunicorn), "-w", str(self.workers), "-b", f"{HOST}:{self.port}", "--chdir", str(self.chdir),
             "--control-socket", str(self.logfile.with_suffix(".ctl")), *self.extra, self.app_spec],
            env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}; see {self.logfile}:\n"
                                   + self.logfile.read_text(errors="replace")[-3000:])
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    conn.close()
                    return self
                conn.close()
            except OSError:
                pass
            time.sleep(0.3)
        self.__exit__(None, None, None)
        raise RuntimeError(f"gunicorn did not answer /healthz within 90 s; see {self.logfile}")

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # graceful: workers finish their request
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)  # our own process group only
                self.proc.wait(timeout=10)
        if getattr(self, "_log", None):
            self._log.close()

    @property
    def base(self):
        return f"http://{HOST}:{self.port}"

    def log_problems(self):
        """One line per failure the server logged: each "Exception on …" with the exception that
        ended its traceback, worker time-outs and kills, "database is locked"."""
        text = self.logfile.read_text(errors="replace") if self.logfile.exists() else ""
        problems, current = [], None
        for line in text.splitlines():
            if "Exception on " in line or "Error handling request" in line:
                if current:
                    problems.append(current)
                current = line.split("] ", 1)[-1].strip()
            elif current and " → " not in current and re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Violation|Deadlock\w*|Timeout)\b.*", line):
                current += " → " + line.strip()[:200]
            elif re.search(r"WORKER TIMEOUT|was sent SIG|database is locked", line):
                problems.append(line.strip()[:200])
        if current:
            problems.append(current)
        return problems


# --- HTTP ---------------------------------------------------------------------------------------

class Response:
    __slots__ = ("status", "headers", "body", "elapsed")

    def __init__(self, status, headers, body, elapsed):
        self.status, self.headers, self.body, self.elapsed = status, headers, body, elapsed

    @property
    def text(self):
        return self.body.decode("utf-8", errors="replace")

    @property
    def location(self):
        loc = self.headers.get("Location") or ""
        return urlsplit(loc).path + (("?" + urlsplit(loc).query) if urlsplit(loc).query else "")


class Client:
    """One simulated browser: a cookie jar and a connection to one host (re-opened whenever the
    server closes it, as gunicorn's sync workers do after each response)."""

    def __init__(self, port, host=HOST, timeout=120):
        self.host, self.port, self.timeout = host, port, timeout
        self.cookies = {}
        self.conn = None

    def _connection(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self.conn

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method, path, form=None):
        headers = {"User-Agent": USER_AGENT, "Accept": "text/html", "Accept-Language": "zh-CN"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form, doseq=True).encode("utf-8")
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Origin"] = f"http://{self.host}:{self.port}"
            headers["Referer"] = f"http://{self.host}:{self.port}{path}"
        started = time.perf_counter()
        try:
            conn = self._connection()
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        elapsed = time.perf_counter() - started
        for value in resp.headers.get_all("Set-Cookie") or ():
            self._store_cookie(value)
        if resp.will_close:
            self.close()
        return Response(resp.status, resp.headers, data, elapsed)

    def _store_cookie(self, header):
        first, *attrs = header.split(";")
        name, _, value = first.strip().partition("=")
        attrs = [a.strip().lower() for a in attrs]
        expired = value in ("", '""') or any(
            a.startswith("max-age=0") or a.startswith("expires=thu, 01 jan 1970") for a in attrs)
        if expired:
            self.cookies.pop(name, None)
        else:
            self.cookies[name] = value

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, form):
        return self.request("POST", path, form)

    def login(self, username, password=PASSWORD):
        page = self.get("/login")
        form = find_form(page.text, field="password")
        if form is None:
            raise RuntimeError(f"no sign-in form on /login ({page.status})")
        data = dict(form.fields)
        data.update(username=username, password=password)
        resp = self.post(form.action or "/login", data)
        if resp.status != 302 or "/login" in resp.location:
            raise RuntimeError(f"sign-in of {username} failed: {resp.status} {resp.text[:300]}")
        return resp

    @property
    def session_cookie(self):
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())


# --- forms --------------------------------------------------------------------------------------

class Form:
    def __init__(self, action, method):
        self.action, self.method = action, method
        self.fields = []  # [(name, value)] as a browser would submit them, in order
        self.names = []  # every named control, submitted or not (unchecked boxes, buttons)
        self.selects = {}  # name -> [option values]

    def get(self, name, default=None):
        for k, v in self.fields:
            if k == name:
                return v
        return default

    def set(self, name, value):
        self.fields = [(k, v) for k, v in self.fields if k != name] + [(name, value)]

    def data(self):
        return list(self.fields)


class _FormParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms, self.form = [], None
        self._select = self._textarea = None
        self._select_first = None
        self._select_chosen = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.form = Form(a.get("action") or "", (a.get("method") or "get").lower())
            self.forms.append(self.form)
            return
        if self.form is None:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = (a.get("type") or "text").lower()
            self.form.names.append(name)
            if kind in ("submit", "button", "image", "reset", "file"):
                return
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.form.fields.append((name, a.get("value") or "on"))
                return
            self.form.fields.append((name, a.get("value") or ""))
        elif tag == "select" and name:
            self.form.names.append(name)
            self._select, self._select_first, self._select_chosen = name, None, False
            self.form.selects[name] = []
        elif tag == "option" and self._select:
            value = a.get("value", "")
            self.form.selects[self._select].append(value)
            if self._select_first is None:
                self._select_first = value
            if "selected" in a and not self._select_chosen:
                self.form.fields.append((self._select, value))
                self._select_chosen = True
        elif tag == "textarea" and name:
            self.form.names.append(name)
            self._textarea = [name, ""]

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea[1] += data

    def handle_endtag(self, tag):
        if tag == "select" and self._select:
            if not self._select_chosen and self._select_first is not None:
                self.form.fields.append((self._select, self._select_first))
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self.form.fields.append((self._textarea[0], self._textarea[1].lstrip("\n")))
            self._textarea = None
        elif tag == "form":
            self.form = None


def parse_forms(html):
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    return parser.forms


def find_form(html, field=None, action=None):
    """The first POST form holding control ``field`` (or posting to ``action``)."""
    for form in parse_forms(html):
        if form.method != "post":
            continue
        if field is not None and field not in form.names:
            continue
        if action is not None and not form.action.startswith(action):
            continue
        return form
    return None


# --- statistics ---------------------------------------------------------------------------------

def percentile(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def ms(seconds):
    return f"{seconds * 1000:8.1f}"


# --- customer rows ------------------------------------------------------------------------------

SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任"
            "沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
GIVEN = ("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华玉萍红娥玲芬燕彬鹏辉斌宇浩凯健俊帆帅旭宁龙林欣佳雪晨阳"
         "嘉怡婷倩颖琳晶慧莉蕾薇涵梦瑶悦诗雨思妍雅琪子轩睿博文昊然天泽宏志远航峰毅刚诚晓云海波清秀春秋冬梅竹松")
CITIES = ("北京", "上海", "广州", "深圳", "杭州", "南京", "成都", "武汉", "西安", "重庆", "天津", "沈阳",
          "济南", "福州", "长沙", "郑州", "苏州", "厦门", "青岛", "宁波")
WORDS = ("华信", "东方", "恒通", "瑞丰", "金鼎", "汇智", "博远", "鑫源", "嘉禾", "中科", "同创", "盛世", "天成",
         "宏达", "润泽", "联合", "新锐", "永安", "长城", "星河")
TRADES = ("科技", "贸易", "电子", "物流", "咨询", "建设", "医药", "食品", "传媒", "机械")
ROADS = ("人民路", "解放路", "中山路", "建设路", "和平路", "文化路", "长江路", "黄河路", "新华路", "胜利路")
REGIONS = ("110101", "110102", "110105", "310101", "310104", "440103", "440106", "440304", "320102", "330102",
           "510104", "420102", "610102", "500103", "120101", "210102", "370102", "350102", "430102", "410102")
MOBILE = ("138", "139", "136", "137", "135", "150", "151", "152", "158", "159", "186", "187", "188", "189",
          "130", "131", "132", "155", "156", "185")
HEADERS = ("类型", "名称", "手机", "身份证号", "统一社会信用代码", "家庭住址", "负责人")
_EPOCH = datetime.date(1950, 1, 1)


def person_name(i, extra=0):
    """Unique for i < 100 * 120**2 (1.44M); ``extra`` given characters more for another range."""
    n_s, n_g = len(SURNAMES), len(GIVEN)
    name = SURNAMES[i % n_s] + GIVEN[(i // n_s) % n_g] + GIVEN[(i // (n_s * n_g)) % n_g]
    for k in range(extra):
        name += GIVEN[(i // (n_s * n_g * n_g * (k + 1)) + 7 * k) % n_g]
    return name


def company_name(i):
    """Unique for i < 20 * 20 * 20 * 10 * 100."""
    a, b = i % 20, (i // 20) % 20
    c, d, e = (i // 400) % 20, (i // 8000) % 10, (i // 80000)
    suffix = f"第{e}" if e else ""
    return f"{CITIES[a]}{WORDS[b]}{WORDS[c]}{TRADES[d]}{suffix}有限公司"


def phone(i):
    """A valid mainland mobile number, unique for every i < 20 * 10**8."""
    n = len(MOBILE)
    return MOBILE[i % n] + f"{((i // n) * 7919 + 104729) % 10**8:08d}"


def id_number(i):
    """A valid 18-digit 居民身份证号 (real region, existing birth date, check digit), unique per i."""
    from stdnum.cn import ric
    seq, k = i % 1000, i // 1000
    days, region = k % 18000, REGIONS[(k // 18000) % len(REGIONS)]
    birth = _EPOCH + datetime.timedelta(days=days)
    body = f"{region}{birth:%Y%m%d}{seq:03d}"
    return body + ric.calc_check_digit(body + "0")


def credit_code(i):
    from stdnum.cn import uscc
    body = f"91{REGIONS[i % len(REGIONS)]}{i:09d}"
    return body + uscc.calc_check_digit(body)


def home_address(i):
    return f"{CITIES[i % 20]}市{ROADS[(i // 20) % 10]}{i % 997 + 1}号{i % 31 + 1}栋{i % 7 + 1}0{i % 4 + 1}室"


def customer_row(i, owner):
    """One import row (values in HEADERS order); every fifth row is an organisation."""
    if i % 5 == 4:
        return ("企业", company_name(i), phone(i), "", credit_code(i), "", owner)
    return ("个人", person_name(i), phone(i), id_number(i), "", home_address(i), owner)


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADERS)
        writer.writerows(rows)
