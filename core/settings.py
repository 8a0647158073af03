"""Module settings: each module reads its own namespace of the app's configuration.

``module_setting("archives", "max_attachment", 20)`` reads ``ARCHIVES_MAX_ATTACHMENT`` from the
app's configuration (tests set it through ``create_app({...})``), else the default."""
from pathlib import Path

from flask import current_app


def module_setting(module, name, default=None):
    return current_app.config.get(f"{module}_{name}".upper(), default)


def upload_folder(module):
    """The module's own folder for stored files, inside the instance's upload folder."""
    return Path(current_app.config["UPLOAD_FOLDER"]) / module
