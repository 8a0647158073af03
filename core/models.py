"""Core tables: departments, users, role grants, module state and sign-in throttling."""
import secrets
from datetime import UTC, datetime

from flask_login import UserMixin
from sqlalchemy import UniqueConstraint

from core.db import db

ROLES = ("admin", "head", "sales", "service", "security")
ROLE_LABELS = {
    "admin": {"zh_CN": "系统管理员", "en": "Administrator"},
    "head": {"zh_CN": "部门负责人", "en": "Department head"},
    "sales": {"zh_CN": "销售人员", "en": "Sales"},
    "service": {"zh_CN": "客服人员", "en": "Service"},
    "security": {"zh_CN": "安全管理员", "en": "Security officer"},
}


def utcnow():
    return datetime.now(UTC)


class UTCDateTime(db.TypeDecorator):
    """Timezone-aware UTC timestamps on SQLite as on PostgreSQL."""

    impl = db.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime stored; use core.models.utcnow()")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Department(db.Model):
    __tablename__ = "core_department"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    code = db.Column(db.String(32), nullable=False, unique=True)
    name = db.Column(db.String(100), nullable=False)
    created_at = db.Column(UTCDateTime, nullable=False, default=utcnow)

    def __str__(self):
        return self.name


class User(UserMixin, db.Model):
    __tablename__ = "core_user"
    __table_args__ = {"sqlite_autoincrement": True}

    id = db.Column(db.Integer, primary_key=True)
    username = db.Column(db.String(64), nullable=False, unique=True)
    display_name = db.Column(db.String(100), nullable=False, default="")
    password_hash = db.Column(db.String(255), nullable=False)
    role = db.Column(db.String(16), nullable=False)
    department_id = db.Column(db.Integer, db.ForeignKey("core_department.id"), nullable=True, index=True)
    active = db.Column(db.Boolean, nullable=False, default=True)
    # Flask-Login's "alternative token": rotating it ends every session of the user at once.
    session_token = db.Column(db.String(64), nullable=False, unique=True,
                              default=lambda: secrets.token_hex(32))
    must_change_password = db.Column(db.Boolean, nullable=False, default=False)
    failed_logins = db.Column(db.Integer, nullable=False, default=0)
    locked_until = db.Column(UTCDateTime, nullable=True)
    locale = db.Column(db.String(8), nullable=True)
    created_at = db.Column(UTCDateTime, nullable=False, default=utcnow)

    department = db.relationship(Department)

    @property
    def is_active(self):
        return self.active

    def get_id(self):
        return self.session_token

    def rotate_session_token(self):
        self.session_token = secrets.token_hex(32)

    def __str__(self):
        return self.display_name or self.username


class RoleGrant(db.Model):
    """A permission granted to a role; declared permissions live in code, grants are data."""

    __tablename__ = "core_role_grant"
    __table_args__ = (UniqueConstraint("role", "permission"),)

    id = db.Column(db.Integer, primary_key=True)
    role = db.Column(db.String(16), nullable=False)
    permission = db.Column(db.String(100), nullable=False)


class RoleChange(db.Model):
    """A move of an account between the admin role and a data role, waiting for a second person
    (the security role) to confirm it: an administrator alone never reaches customer data."""

    __tablename__ = "core_role_change"

    id = db.Column(db.Integer, primary_key=True)
    user_id = db.Column(db.Integer, db.ForeignKey("core_user.id", ondelete="CASCADE"), nullable=False, index=True)
    from_role = db.Column(db.String(16), nullable=False)
    to_role = db.Column(db.String(16), nullable=False)
    department_id = db.Column(db.Integer, db.ForeignKey("core_department.id"), nullable=True)
    requested_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=False)
    requested_at = db.Column(UTCDateTime, nullable=False, default=utcnow)
    status = db.Column(db.String(16), nullable=False, default="pending")  # pending/confirmed/refused
    decided_by = db.Column(db.Integer, db.ForeignKey("core_user.id"), nullable=True)
    decided_at = db.Column(UTCDateTime, nullable=True)

    user = db.relationship(User, foreign_keys=[user_id])
    requester = db.relationship(User, foreign_keys=[requested_by])
    decider = db.relationship(User, foreign_keys=[decided_by])
    department = db.relationship(Department)


class ModuleState(db.Model):
    """A module the administrator installed (its migrations have run)."""

    __tablename__ = "core_module_state"

    name = db.Column(db.String(64), primary_key=True)
    version = db.Column(db.String(32), nullable=False)
    installed_at = db.Column(UTCDateTime, nullable=False, default=utcnow)


class ModuleEnablement(db.Model):
    """A department using an installed module. Disabling deletes this row, never module data."""

    __tablename__ = "core_module_enablement"
    __table_args__ = (UniqueConstraint("module", "department_id"),)

    id = db.Column(db.Integer, primary_key=True)
    module = db.Column(db.String(64), db.ForeignKey("core_module_state.name"), nullable=False)
    department_id = db.Column(db.Integer, db.ForeignKey("core_department.id", ondelete="CASCADE"),
                              nullable=False)
    enabled_at = db.Column(UTCDateTime, nullable=False, default=utcnow)


class LoginThrottle(db.Model):
    """Failed sign-ins per client address: growing delays past a threshold, audit summaries."""

    __tablename__ = "core_login_throttle"

    address = db.Column(db.String(64), primary_key=True)
    failures = db.Column(db.Integer, nullable=False, default=0)
    window_start = db.Column(UTCDateTime, nullable=False, default=utcnow)
    locked_until = db.Column(UTCDateTime, nullable=True)  # the end of the address's current delay
    unaudited = db.Column(db.Integer, nullable=False, default=0)  # failures still to summarise
