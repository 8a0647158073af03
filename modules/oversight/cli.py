"""`kehu alerts run`: read the audit trail from where the alert rules stopped (for cron)."""
import click
from flask.cli import with_appcontext

from core.api import cli_fail, cli_ready, is_enabled

# the security role works company-wide: for it the module counts as enabled exactly when installed
_SECURITY = type("SecurityOfficer", (), {"role": "security"})()


@click.command("run")
@with_appcontext
def alerts_run():
    """Run the anomaly-alert rules over the audit entries written since the last run."""
    cli_ready()
    if not is_enabled("oversight", None, user=_SECURITY):
        cli_fail("the oversight module is not installed: run `kehu modules install oversight`")
    from .alerts import open_count, run_all
    read, touched = run_all()
    click.echo(f"alerts: {read} audit entries read, {len(touched)} alerts raised or extended, "
               f"{open_count()} open")
