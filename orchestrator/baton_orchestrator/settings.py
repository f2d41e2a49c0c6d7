"""The orchestrator's one settings class: every knob is a `BATON_*` environment variable."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ACTION_PATTERN = r"^[A-Za-z0-9._-]{1,200}$"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BATON_", extra="ignore")

    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/baton",
        description="PostgreSQL URL (postgresql://user:pass@host:port/db); the source of truth.",
    )
    database_schema: str = Field(
        "",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$|^$",
        description="PostgreSQL schema for Baton's tables (default: public).",
    )
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,...].")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis URL: idempotency fast path, worker presence.")
    redis_prefix: str = Field("baton:", description="Prefix of every Redis key Baton writes.")
    topic_prefix: str = Field("workflow-", pattern=r"^[A-Za-z0-9._-]*$", description="Prefix of every Kafka topic.")
    topic_partitions: int = Field(6, ge=1, le=1000, description="Partitions of topics the orchestrator creates.")
    topic_replication_factor: int = Field(1, ge=1, le=32, description="Replicas of topics the orchestrator creates.")
    topic_min_insync_replicas: int | None = Field(
        None,
        ge=1,
        le=32,
        description="min.insync.replicas of topics the orchestrator creates (broker default if unset).",
    )
    max_payload_bytes: int = Field(1_048_576, ge=1024, description="Largest request body / step input or output.")
    idempotency_ttl_seconds: int = Field(86_400, ge=1, description="TTL of an Idempotency-Key in Redis.")
    default_step_timeout_seconds: float = Field(300.0, gt=0, description="Step timeout when a step sets none.")
    results_batch_max: int = Field(1000, ge=1, description="Most results applied in one transaction.")
    timer_interval_seconds: float = Field(0.2, gt=0, description="How often retry timers and deadlines are swept.")
    relay_interval_seconds: float = Field(1.0, gt=0, description="How often the outbox recovery relay runs.")
    relay_grace_seconds: float = Field(
        5.0,
        ge=0,
        description="Outbox rows older than this are (re)published by the relay: the recovery path.",
    )
    engine_group_id: str = Field("baton-engine", description="Consumer group of the engine's results consumer.")
    max_wait_seconds: float = Field(
        300.0, ge=1, le=3600, description="Longest ?wait= a trigger or run read may ask for (422 beyond)."
    )
    max_waiters: int = Field(
        10_000, ge=1, description="Waiting requests (and live streams) one API process holds at once (503 beyond)."
    )
    engine_max_poll_interval_seconds: float = Field(
        300.0,
        ge=1,
        le=3600,
        description="An engine that applies no batch for this long leaves its group, then rejoins.",
    )
    flow_tick_seconds: float = Field(
        0.05, gt=0, le=10, description="How often held (WAITING) steps are looked at for release when idle."
    )
    flow_aging_seconds: float = Field(
        30.0, gt=0, le=86_400, description="A held step's effective priority rises one level per this long waited."
    )
    schedule_interval_seconds: float = Field(1.0, gt=0, description="How often due schedules are looked for.")
    schedule_batch: int = Field(100, ge=1, description="Most schedules one scheduler pass fires.")
    schedule_misfire_grace_seconds: float = Field(
        60.0, ge=0, description="catch_up=skip still fires a slot this late (an engine restart is not downtime)."
    )
    kafka_trigger_poll_seconds: float = Field(
        3.0, gt=0, description="How often engines re-read the Kafka trigger definitions."
    )
    kafka_trigger_batch: int = Field(100, ge=1, description="Most records a Kafka trigger turns into runs per commit.")
    auto_migrate: bool = Field(True, description="Run database migrations when `baton server` starts.")
    startup_timeout_seconds: float = Field(60.0, gt=0, description="How long start-up waits for PostgreSQL/Kafka.")
    api_keys: str = Field("", description="Comma-separated bearer tokens; when set, the API requires one.")
    log_level: str = Field("INFO", description="Log level of the `baton` CLI (the library never configures logging).")

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, v: str) -> str:
        if not v.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            raise ValueError("BATON_DATABASE_URL must be a postgresql:// URL")
        return v

    @property
    def sqlalchemy_url(self) -> str:
        rest = self.database_url.split("://", 1)[1]
        return f"postgresql+psycopg://{rest}"

    @property
    def results_topic(self) -> str:
        return f"{self.topic_prefix}results"

    @property
    def results_dlt_topic(self) -> str:
        return f"{self.topic_prefix}results.DLT"

    @property
    def jobs_dlt_topic(self) -> str:
        return f"{self.topic_prefix}jobs.DLT"

    @property
    def workers_topic(self) -> str:
        return f"{self.topic_prefix}workers"

    def job_topic(self, action: str) -> str:
        return f"{self.topic_prefix}jobs.{action}"

    @property
    def api_key_list(self) -> list[str]:
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]
