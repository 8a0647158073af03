"""The bare baseline of `make bench`: a minimal Flask + Flask-SQLAlchemy + Jinja app that lists the
newest 50 rows of a plain table — no sign-in, no scoping, no crypto, no audit, no layout.

Served exactly like kehu (``gunicorn -w 2 'baseline:create_app()'`` from this folder) with
BASELINE_DATABASE_URL naming the database that holds the table ``bench_plain`` (filled by
bench.py with the same rows it imports into kehu, in plain text).
"""
import os
from pathlib import Path

from flask import Flask, render_template
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import select

db = SQLAlchemy()


class Row(db.Model):
    __tablename__ = "bench_plain"

    id = db.Column(db.Integer, primary_key=True)
    kind = db.Column(db.String(8))
    name = db.Column(db.String(200))
    phone = db.Column(db.String(32))
    id_number = db.Column(db.String(18))
    credit_code = db.Column(db.String(18))
    home_address = db.Column(db.String(300))
    owner = db.Column(db.String(64))


def create_app():
    app = Flask(__name__, template_folder=str(Path(__file__).with_name("templates")))
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["BASELINE_DATABASE_URL"]
    db.init_app(app)

    @app.route("/")
    def index():
        rows = db.session.scalars(select(Row).order_by(Row.id.desc()).limit(50)).all()
        return render_template("baseline.html", rows=rows)

    @app.route("/healthz")
    def healthz():
        return {"status": "ok"}

    return app
