"""Pages of the customer register (blueprint "customers")."""
from flask import Blueprint, render_template

from core.access import require

bp = Blueprint("customers", __name__, url_prefix="/customers")


@bp.route("/")
@require("customers.view")
def index():
    return render_template("customers/list.html")


@bp.route("/incomplete")
@require("customers.view")
def incomplete():
    return render_template("customers/list.html")


@bp.route("/handover")
@require("customers.handover")
def handover():
    return render_template("customers/list.html")
