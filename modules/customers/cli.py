"""`kehu import customers`, `kehu export customers`, `kehu customers ...` and demo data."""
import click
from flask.cli import with_appcontext

group = click.Group("customers", help="Customer register.")


@click.command("customers")
@click.argument("file", type=click.Path(dir_okay=False))
@with_appcontext
def import_command(file):
    """Import customers from CSV or XLSX."""
    raise click.ClickException("not yet available")


@click.command("customers")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--reason", required=True)
@with_appcontext
def export_command(file, reason):
    """Export customers to CSV or XLSX."""
    raise click.ClickException("not yet available")


def demo_data(departments, users):
    return None
