"""The relational schema of the metadata store (SQLAlchemy Core tables).

Alembic migrations in ``storage/migrations/versions`` create exactly these
tables; ``tests/storage/test_migrations.py`` checks the two never drift.
Times are UNIX epoch seconds (float) so SQLite and PostgreSQL agree.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

#: 64-bit row ids on PostgreSQL; SQLite needs plain INTEGER for its rowid alias.
_RowId = BigInteger().with_variant(Integer(), "sqlite")

#: One recorded execution. ``status`` is running, finished, failed, crashed or cached.
runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("kind", String(32), nullable=False, default="run"),  # run, pipeline, step, optimize
    Column("status", String(16), nullable=False),
    Column("parent_id", String(32), ForeignKey("runs.id", ondelete="SET NULL"), nullable=True),
    Column("command", Text, nullable=True),  # JSON list of argv
    Column("cwd", Text, nullable=True),
    Column("user", String(255), nullable=True),
    Column("host", String(255), nullable=True),
    Column("pid", Integer, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("ended_at", Float, nullable=True),
    Column("heartbeat_at", Float, nullable=True),
    Column("exit_code", Integer, nullable=True),
    Column("error", Text, nullable=True),  # exception and traceback of a failed run
    Column("git_commit", String(64), nullable=True),
    Column("git_branch", String(255), nullable=True),
    Column("git_dirty", Boolean, nullable=True),
    Column("diff_digest", String(64), nullable=True),  # artifact holding the uncommitted diff
    Column("env_digest", String(64), ForeignKey("environments.digest"), nullable=True),
    Column("cache_key", String(64), nullable=True),
    Column("cached_from", String(32), nullable=True),  # the run whose result a cached run reuses
    Column("project", String(64), nullable=False, server_default="default"),
)
Index("ix_runs_created_at", runs.c.created_at)
Index("ix_runs_project_created_at", runs.c.project, runs.c.created_at)
Index("ix_runs_parent_id", runs.c.parent_id)
Index("ix_runs_name", runs.c.name)
Index("ix_runs_status", runs.c.status)
Index("ix_runs_cache_key", runs.c.cache_key)

#: Captured environments, stored once per distinct content (digest of the JSON).
environments = Table(
    "environments",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("data", Text, nullable=False),
)

#: Parameters. ``value`` is the text form; ``value_num`` its number when it is one;
#: ``value_type`` the type it was logged with when that was not text (int, float, bool, null, json).
params = Table(
    "params",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
    Column("value_num", Float, nullable=True),
    Column("value_type", String(8), nullable=True),
)
Index("ix_params_key_num", params.c.key, params.c.value_num)

tags = Table(
    "tags",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
)

#: Metric points, stored as columnar chunks: one row per series per flush, holding packed
#: little-endian arrays (int64 steps, float64 values (NaN kept), float64 timestamps).
#: Writing 20,000 points is one row, and reading a series back is one decode; a
#: step-range read selects only the chunks whose [first_step, last_step] overlap it.
metric_chunks = Table(
    "metric_chunks",
    metadata,
    Column("id", _RowId, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(255), nullable=False),
    Column("count", Integer, nullable=False),
    Column("first_step", BigInteger, nullable=False),
    Column("last_step", BigInteger, nullable=False),
    Column("steps", LargeBinary, nullable=False),
    Column("values", LargeBinary, nullable=False),
    Column("timestamps", LargeBinary, nullable=False),
)
Index("ix_metric_chunks_run_key", metric_chunks.c.run_id, metric_chunks.c.key, metric_chunks.c.id)

#: The last point of each series (highest step, then latest time): what filters and tables use.
latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", Float, nullable=True),  # NULL is NaN
    Column("step", Integer, nullable=False),
    Column("timestamp", Float, nullable=False),
)
Index("ix_latest_metrics_key_value", latest_metrics.c.key, latest_metrics.c.value)

#: Content-addressed artifacts known to the store (the bytes live in the artifact store).
artifacts = Table(
    "artifacts",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),  # 64-bit: files of 2 GiB and more (0008)
    Column("is_dir", Boolean, nullable=False, default=False),
    Column("file_count", Integer, nullable=False, default=1),
    Column("created_at", Float, nullable=False),
)

#: A run's inputs and outputs. ``name`` is the path or label the run knew it by.
run_artifacts = Table(
    "run_artifacts",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("direction", String(8), primary_key=True),  # input | output
    Column("name", String(1024), primary_key=True),
    Column("digest", String(64), ForeignKey("artifacts.digest"), nullable=False),
    Column("kind", String(32), nullable=False, default="file"),  # dataset, model, file, report, log, diff
    Column("created_at", Float, nullable=False),
)
Index("ix_run_artifacts_digest", run_artifacts.c.digest)

#: Captured stdout/stderr chunks of a run, in order.
run_logs = Table(
    "run_logs",
    metadata,
    Column("id", _RowId, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("stream", String(8), nullable=False),  # stdout | stderr
    Column("timestamp", Float, nullable=False),
    Column("text", Text, nullable=False),
)
Index("ix_run_logs_run", run_logs.c.run_id, run_logs.c.id)


# =====================================================================================
# Model registry (migration 0002): models, numbered versions, aliases and their history.
# Row access: ``groundwork.storage.registry``. (Its prediction samples gave way to the
# prediction log in migration 0006.)
# =====================================================================================

#: A named model. ``latest_version`` is the counter that numbers new versions.
models = Table(
    "models",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("description", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("latest_version", Integer, nullable=False, default=0),
    Column("project", String(64), nullable=False, server_default="default"),
)
Index("ix_models_project", models.c.project)

#: One version of a model: an artifact (a folder holding the native form, and an ONNX form
#: where conversion worked) made by a run. ``signature``, ``tags`` and ``info`` are JSON.
model_versions = Table(
    "model_versions",
    metadata,
    Column("name", String(255), ForeignKey("models.name", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("run_id", String(32), ForeignKey("runs.id", ondelete="SET NULL"), nullable=True),
    Column("artifact_digest", String(64), ForeignKey("artifacts.digest"), nullable=False),
    Column("flavor", String(32), nullable=False),  # sklearn, pytorch, onnx, optimized
    Column("onnx_digest", String(64), nullable=True),  # the ONNX file inside the artifact
    Column("signature", Text, nullable=True),
    Column("description", Text, nullable=True),
    Column("tags", Text, nullable=True),
    Column("info", Text, nullable=True),  # flavor details: library versions, files, conversions
    Column("user", String(255), nullable=True),
    Column("created_at", Float, nullable=False),
)
Index("ix_model_versions_run_id", model_versions.c.run_id)
Index("ix_model_versions_artifact_digest", model_versions.c.artifact_digest)

#: Where each alias (``production``, ``staging``...) of a model points now.
model_aliases = Table(
    "model_aliases",
    metadata,
    Column("name", String(255), ForeignKey("models.name", ondelete="CASCADE"), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
)

#: Every alias move, append-only. ``to_version`` NULL means the alias was removed.
alias_history = Table(
    "alias_history",
    metadata,
    Column("id", _RowId, primary_key=True, autoincrement=True),
    Column("name", String(255), ForeignKey("models.name", ondelete="CASCADE"), nullable=False),
    Column("alias", String(64), nullable=False),
    Column("from_version", Integer, nullable=True),
    Column("to_version", Integer, nullable=True),
    Column("who", String(255), nullable=True),
    Column("changed_at", Float, nullable=False),
    Column("reason", Text, nullable=True),
)
Index("ix_alias_history_name", alias_history.c.name, alias_history.c.id)

# =====================================================================================
# Model exports (migration 0003): a version packaged for another runtime, with the check
# that it answers like the source model. Row access: ``groundwork.storage.registry``.
# =====================================================================================

#: A passed export of a model version: the bundle (an artifact) and its verification (JSON).
model_exports = Table(
    "model_exports",
    metadata,
    Column("id", _RowId, primary_key=True, autoincrement=True),
    Column("name", String(255), ForeignKey("models.name", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("target", String(32), nullable=False),  # web, onnx, ort-mobile
    Column("precision", String(16), nullable=False),  # fp32, fp16, int8
    Column("artifact_digest", String(64), ForeignKey("artifacts.digest"), nullable=False),
    Column("verification", Text, nullable=False),  # runtime, agreement, size, latency
    Column("location", Text, nullable=True),  # the folder it was written to
    Column("user", String(255), nullable=True),
    Column("created_at", Float, nullable=False),
)
Index("ix_model_exports_version", model_exports.c.name, model_exports.c.version)
Index("ix_model_exports_artifact_digest", model_exports.c.artifact_digest)


#: Ids of write batches already applied: a batch sent again (a retry after a lost answer) is skipped.
applied_batches = Table(
    "applied_batches",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("applied_at", Float, nullable=False),
)
Index("ix_applied_batches_applied_at", applied_batches.c.applied_at)


# =====================================================================================
# Prediction log (migration 0006): the segments ``groundwork serve`` writes, each a Parquet
# file in the artifact store, with its summary. Row access: ``groundwork.storage.monitor``.
# =====================================================================================

#: One segment of a model's prediction log. ``status``: open (filling; ``pid``/``host`` write it),
#: closed (``digest`` is its Parquet file). ``summary`` is zlib-compressed JSON (sketches, counts).
prediction_segments = Table(
    "prediction_segments",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("model", String(255), nullable=False),
    Column("status", String(8), nullable=False),
    Column("pid", Integer, nullable=True),
    Column("host", String(255), nullable=True),
    Column("opened_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("closed_at", Float, nullable=True),
    Column("first_ts", Float, nullable=True),
    Column("last_ts", Float, nullable=True),
    Column("rows", BigInteger, nullable=False, default=0),
    Column("requests", BigInteger, nullable=False, default=0),
    Column("digest", String(64), ForeignKey("artifacts.digest"), nullable=True),
    Column("size", BigInteger, nullable=True),
    Column("summary", LargeBinary, nullable=True),
)
Index("ix_prediction_segments_model_last_ts", prediction_segments.c.model, prediction_segments.c.last_ts)
Index("ix_prediction_segments_status", prediction_segments.c.status)


# =====================================================================================
# The team server (migration 0007): users, projects, memberships, tokens, the audit log.
# Row access: ``groundwork.storage.team``. Server-side only: clients never open these.
# =====================================================================================

#: A user. ``password_hash`` is scrypt's (``groundwork.server.auth.hash_password``), never the password.
users = Table(
    "users",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("password_hash", String(255), nullable=True),
    Column("server_admin", Boolean, nullable=False, default=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
)

#: A project (``runs.project`` and ``models.project`` name one; ``default`` is seeded).
projects = Table(
    "projects",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("description", Text, nullable=True),
    Column("created_at", Float, nullable=False),
)

#: A user's role in a project: viewer, editor, maintainer or admin.
memberships = Table(
    "memberships",
    metadata,
    Column("user", String(64), ForeignKey("users.name", ondelete="CASCADE"), primary_key=True),
    Column("project", String(64), ForeignKey("projects.name", ondelete="CASCADE"), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("granted_at", Float, nullable=False),
)
Index("ix_memberships_project", memberships.c.project)

#: API tokens (``kind`` api) and web UI sessions (``kind`` session): the SHA-256 of the secret,
#: the project and the role cap they carry, and when they expire, were revoked, were last used.
tokens = Table(
    "tokens",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("secret_hash", String(64), nullable=False),
    Column("kind", String(8), nullable=False, default="api"),
    Column("user", String(64), ForeignKey("users.name", ondelete="CASCADE"), nullable=False),
    Column("project", String(64), ForeignKey("projects.name", ondelete="CASCADE"), nullable=False),
    Column("role", String(16), nullable=False),
    Column("name", String(255), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
    Column("last_used_at", Float, nullable=True),
)
Index("ix_tokens_user", tokens.c.user)

#: Every state change made through a team server, and every failed login. ``details`` is JSON;
#: ``token_id`` has no foreign key (entries outlive tokens).
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", _RowId, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(255), nullable=False),
    Column("token_id", String(16), nullable=True),
    Column("address", String(64), nullable=True),
    Column("project", String(64), nullable=True),
    Column("action", String(64), nullable=False),
    Column("target", Text, nullable=True),
    Column("details", Text, nullable=True),
)
Index("ix_audit_log_at", audit_log.c.at)
Index("ix_audit_log_project_at", audit_log.c.project, audit_log.c.at)
Index("ix_audit_log_action_actor_at", audit_log.c.action, audit_log.c.actor, audit_log.c.at)
Index("ix_audit_log_action_address_at", audit_log.c.action, audit_log.c.address, audit_log.c.at)
