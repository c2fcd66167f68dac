"""All configuration, read once from ``KUZET_*`` environment variables.

:func:`Settings.from_env` is the only place in Kuzet that reads the environment;
everything else receives the frozen :class:`Settings` it returns. The table of
variables is in the README ("Configuration").
"""

from __future__ import annotations

import difflib
import functools
import logging
import math
import os
import re
import ssl
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from detectors.engine import DEFAULT_FUTURE_SKEW
from detectors.errors import ConfigError
from detectors.events import STREAMS
from detectors.registry import DetectionConfig
from detectors.rules import Rules, parse_rules

logger = logging.getLogger(__name__)

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
#: ``text``: one line for a person; ``json``: one JSON object a line for a log shipper.
LOG_FORMATS = ("text", "json")

#: ``KUZET_*`` variables read by the repository's own tooling, not by Kuzet: the local
#: broker's launcher (deploy/kafka/kafka.sh), the tests, the benchmarks and the demo. They
#: may sit in a developer's shell, so they are not warned about.
TOOLING_VARIABLES = frozenset(
    {
        "KUZET_REQUIRE_BROKER",
        "KUZET_KAFKA_CLUSTER_ID",
        "KUZET_KAFKA_CONTROLLER_PORT",
        "KUZET_KAFKA_DATA",
        "KUZET_KAFKA_LIB",
        "KUZET_KAFKA_OFFSETS_PARTITIONS",
        "KUZET_KAFKA_PORT",
        "KUZET_KAFKA_SASL_PORT",
        "KUZET_KAFKA_SASL_SSL_PORT",
        "KUZET_KAFKA_SCRAM_PASSWORD",
        "KUZET_KAFKA_SCRAM_USER",
        "KUZET_KAFKA_SSL_PORT",
        "KUZET_KAFKA_START_TIMEOUT",
        "KUZET_KAFKA_STOP_TIMEOUT",
        "KUZET_KAFKA_VERSION",
    }
)
#: Prefixes of the tooling's families of variables (tests, benchmarks, simulator, demo).
TOOLING_PREFIXES = ("KUZET_TEST_", "KUZET_BENCH_", "KUZET_SIM_", "KUZET_DEMO_")
#: Variables earlier versions read, and what replaced them.
RETIRED_VARIABLES = {
    "KUZET_STATE_DIR": "the state lives in the state topic (KUZET_TOPIC_STATE) now",
}


@dataclass(frozen=True)
class KafkaSecurity:
    """How to reach a secured cluster (TLS and/or SASL)."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        if "SSL" not in self.protocol:
            return None
        context = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.ssl_certfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return context

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka clients (replay, capture, tests)."""
        kwargs: dict[str, Any] = {"security_protocol": self.protocol}
        if "SSL" in self.protocol:
            kwargs["ssl_context"] = self.ssl_context()
        if self.protocol.startswith("SASL"):
            kwargs.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        return kwargs


@dataclass(frozen=True)
class Settings:
    """Frozen configuration of one Kuzet process."""

    broker: str = "127.0.0.1:9092"
    app_id: str = "kuzet"
    topics: Mapping[str, str] = field(default_factory=lambda: {s: s for s in STREAMS})
    alerts_topic: str = "alerts"
    #: Compacted topic of the latest alert of every finding, keyed by ``finding_id``
    #: (streams/findings.py): what ``/alerts`` and ``kuzet findings`` read.
    findings_topic: str = "findings"
    #: Internal topic of payments regrouped by account (``streams/regroup.py``): as
    #: many partitions as the payments topic; one per consumer group, so the
    #: default is ``<app id>-payments-by-account``.
    by_account_topic: str = "kuzet-payments-by-account"
    #: Internal topic of inspections regrouped by authority, for inspector_anomaly.
    by_authority_topic: str = "kuzet-inspections-by-authority"
    #: Compacted topic of the group's saved partition state (streams/state.py).
    state_topic: str = "kuzet-state"
    #: Compacted topic of rules changes, each from an event time on (streams/rules_feed.py).
    rules_topic: str = "kuzet-rules"
    dlq_suffix: str = ".dlq"
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    #: The bearer token ``/alerts`` and ``/status`` require (``KUZET_WEB_TOKEN``, or the
    #: file ``KUZET_WEB_TOKEN_FILE`` names); None leaves them open. ``/metrics`` and
    #: ``/healthz`` never need it: they carry counts, never an entity id.
    web_token: str | None = field(default=None, repr=False)
    #: The secret the worker signs and checks its saved state with (HMAC-SHA256:
    #: streams/state.py), from ``KUZET_STATE_KEY`` or the file ``KUZET_STATE_KEY_FILE``
    #: names; None: unset, and the worker refuses to start.
    state_key: bytes | None = field(default=None, repr=False)
    # A batch closes at 1,000 events or 50 ms, whichever first: large enough to
    # amortise per-batch work at 10k events/s, short enough to keep alerts prompt.
    batch_size: int = 1000
    batch_within: float = 0.05
    # Producer linger: 5 ms lets alert and dead-letter sends share requests.
    producer_linger: float = 0.005
    # Each partition's state is saved to the state topic this often (seconds), and
    # when the partition leaves the worker: a crash re-reads at most this much input.
    snapshot_seconds: float = 30.0
    # While a backlog is read, an input partition of a regrouped stream whose event
    # time runs this far ahead of the slowest one this worker reads is paused, so the
    # regrouped partitions' merges hold little (seconds of event time).
    max_skew: float = 6 * 3600.0
    # An event further ahead of this worker's wall clock than this (seconds) is a
    # clock error upstream, dead-lettered as future_ts: producers' clocks drift by
    # seconds or minutes, never an hour.
    clock_skew: float = 3600.0
    log_level: str = "info"
    log_format: str = "text"
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    #: ``KUZET_*`` variables set but not read, each with the closest known name (or
    #: what replaced it); :meth:`warn_unknown_variables` logs them once logging is set up.
    unknown_variables: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def topic(self, stream: str) -> str:
        return self.topics[stream]

    def dlq_topic(self, stream: str) -> str:
        return self.topics[stream] + self.dlq_suffix

    @property
    def bootstrap_servers(self) -> str:
        """The broker list for aiokafka, without the ``kafka://`` scheme (still accepted).

        ``KUZET_BROKER`` may separate brokers with commas or semicolons, with or
        without the scheme on each.
        """
        parts = (p.strip().removeprefix("kafka://") for p in re.split(r"[,;]", self.broker))
        return ",".join(part for part in parts if part)

    def regroup_topic(self, name: str) -> str:
        """The internal topic of a regrouping (:data:`streams.regroup.REGROUPS`) by its name."""
        if name == "payments-by-account":
            return self.by_account_topic
        if name == "inspections-by-authority":
            return self.by_authority_topic
        raise KeyError(name)

    def warn_unknown_variables(self) -> None:
        """Log a warning for each ``KUZET_*`` variable set that Kuzet does not read."""
        for name, hint in self.unknown_variables:
            logger.warning("%s is not a Kuzet setting and is ignored; %s", name, hint)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``KUZET_*`` variables (``os.environ`` by default)."""
        env = os.environ if env is None else env
        unknown = unknown_variables(env)
        get = env.get
        prefix = get("KUZET_TOPIC_PREFIX", "")
        app_id = get("KUZET_APP_ID", cls.app_id)
        topics = {s: prefix + get(f"KUZET_TOPIC_{s.upper()}", s) for s in STREAMS}
        protocol = get("KUZET_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").upper()
        _choice("KUZET_KAFKA_SECURITY_PROTOCOL", protocol, SECURITY_PROTOCOLS)
        mechanism = get("KUZET_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512").upper()
        _choice("KUZET_KAFKA_SASL_MECHANISM", mechanism, SASL_MECHANISMS)
        security = KafkaSecurity(
            protocol=protocol,
            sasl_mechanism=mechanism,
            sasl_username=get("KUZET_KAFKA_SASL_USERNAME"),
            sasl_password=get("KUZET_KAFKA_SASL_PASSWORD"),
            ssl_cafile=get("KUZET_KAFKA_SSL_CAFILE"),
            ssl_certfile=get("KUZET_KAFKA_SSL_CERTFILE"),
            ssl_keyfile=get("KUZET_KAFKA_SSL_KEYFILE"),
        )
        if protocol.startswith("SASL") and not (security.sasl_username and security.sasl_password):
            raise ConfigError(
                f"KUZET_KAFKA_SECURITY_PROTOCOL={protocol} needs KUZET_KAFKA_SASL_USERNAME "
                "and KUZET_KAFKA_SASL_PASSWORD"
            )
        timezone = get("KUZET_TIMEZONE", "Asia/Almaty")
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"KUZET_TIMEZONE={timezone!r} is not a tz database zone (e.g. Asia/Almaty)"
            ) from None
        # KUZET_INSPECTION_RULES is the deprecated name of KUZET_RULES (an old
        # inspections-only file is still a valid rules file).
        rules_var = "KUZET_RULES" if get("KUZET_RULES") else "KUZET_INSPECTION_RULES"
        rules_path = get(rules_var)
        rules = _rules(rules_var, rules_path) if rules_path else Rules()
        detection = DetectionConfig(
            timezone=timezone,
            allowed_lateness=_number(env, "KUZET_ALLOWED_LATENESS_HOURS", 24.0) * 3600.0,
            dedup_max_ids=int(_number(env, "KUZET_DEDUP_MAX_IDS", 2_000_000, low=1, whole=True)),
            max_entities=_max_entities(env),
            future_skew={
                stream: _number(
                    env, f"KUZET_FUTURE_SKEW_HOURS_{stream.upper()}", skew / 3600, above=0
                )
                * 3600.0
                for stream, skew in DEFAULT_FUTURE_SKEW.items()
            },
            rules=rules,
        )
        return cls(
            broker=get("KUZET_BROKER", cls.broker),
            app_id=app_id,
            topics=topics,
            alerts_topic=prefix + get("KUZET_TOPIC_ALERTS", cls.alerts_topic),
            findings_topic=prefix + get("KUZET_TOPIC_FINDINGS", cls.findings_topic),
            by_account_topic=prefix
            + get("KUZET_TOPIC_PAYMENTS_BY_ACCOUNT", f"{app_id}-payments-by-account"),
            by_authority_topic=prefix
            + get("KUZET_TOPIC_INSPECTIONS_BY_AUTHORITY", f"{app_id}-inspections-by-authority"),
            state_topic=prefix + get("KUZET_TOPIC_STATE", f"{app_id}-state"),
            rules_topic=prefix + get("KUZET_TOPIC_RULES", f"{app_id}-rules"),
            security=security,
            web_host=get("KUZET_WEB_HOST", cls.web_host),
            web_port=int(
                _number(env, "KUZET_WEB_PORT", cls.web_port, low=1, high=65535, whole=True)
            ),
            web_token=_web_token(env),
            state_key=_state_key(env),
            batch_size=int(_number(env, "KUZET_BATCH_SIZE", cls.batch_size, low=1, whole=True)),
            # Waits and lingers past a minute hold every alert back that long: a unit slip.
            batch_within=_number(
                env, "KUZET_BATCH_WITHIN_MS", cls.batch_within * 1000, high=MAX_WAIT_MS
            )
            / 1000,
            producer_linger=_number(env, "KUZET_PRODUCER_LINGER_MS", 5, high=MAX_WAIT_MS) / 1000,
            # Saving every partition's state continuously would starve the worker: 1 s at least.
            snapshot_seconds=_number(env, "KUZET_SNAPSHOT_SECONDS", cls.snapshot_seconds, low=1),
            max_skew=_number(env, "KUZET_MAX_SKEW_HOURS", cls.max_skew / 3600, above=0) * 3600,
            clock_skew=_number(env, "KUZET_CLOCK_SKEW_MINUTES", cls.clock_skew / 60, above=0) * 60,
            log_level=_choice(
                "KUZET_LOG_LEVEL", get("KUZET_LOG_LEVEL", "info").lower(), LOG_LEVELS
            ),
            log_format=_choice(
                "KUZET_LOG_FORMAT", get("KUZET_LOG_FORMAT", "text").lower(), LOG_FORMATS
            ),
            detection=detection,
            unknown_variables=unknown,
        )


#: Longest batch wait and producer linger (ms).
MAX_WAIT_MS = 60_000


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(allowed)}")
    return value


@functools.cache
def known_variables() -> frozenset[str]:
    """Every ``KUZET_*`` variable Kuzet reads: those :meth:`Settings.from_env` asks for.

    Derived from the reads themselves (from_env of an empty environment asks for every
    name, each defaulted), so the list cannot drift from the code; a test checks that
    every ``KUZET_*`` name in the repository is known.
    """
    reads = _Reads({})
    Settings.from_env(reads)
    return frozenset(reads.names)


class _Reads(Mapping[str, str]):
    """A mapping that records every name looked up in it."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.names: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.names.add(name)
        return self.env[name]

    def __iter__(self) -> Iterator[str]:
        return iter(())  # not a real environment: nothing to warn about

    def __len__(self) -> int:
        return 0


def unknown_variables(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """``KUZET_*`` variables in ``env`` that Kuzet does not read, each with a hint: the
    closest known name (difflib), or what replaced a retired one."""
    if isinstance(env, _Reads):
        return ()
    known = known_variables()
    found = []
    for name in sorted(env):
        if not name.startswith("KUZET_") or name in known or name in TOOLING_VARIABLES:
            continue
        if name.startswith(TOOLING_PREFIXES):
            continue
        if name in RETIRED_VARIABLES:
            hint = f"no longer read: {RETIRED_VARIABLES[name]}; unset it"
        elif name.endswith("_FILE") and name.removesuffix("_FILE") in known:
            files = ", ".join(sorted(n for n in known if n.endswith("_FILE")))
            hint = f"only {files} name files; set {name.removesuffix('_FILE')} itself"
        else:
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else "see the README, Configuration"
        found.append((name, hint))
    return tuple(found)


def _max_entities(env: Mapping[str, str]) -> int | None:
    """``KUZET_MAX_ENTITIES``: one cap for every detector's tracked entities, or None."""
    if not env.get("KUZET_MAX_ENTITIES"):
        return None
    value = _number(env, "KUZET_MAX_ENTITIES", 0)
    if value != int(value) or value < 1_000:
        raise ConfigError(
            f"KUZET_MAX_ENTITIES={env['KUZET_MAX_ENTITIES']!r} must be a whole number of "
            "1000 or more (entities per detector and partition)"
        )
    return int(value)


def _number(
    env: Mapping[str, str],
    name: str,
    default: float,
    *,
    low: float = 0.0,
    above: float | None = None,
    high: float = math.inf,
    whole: bool = False,
) -> float:
    """The number ``name`` holds (``default`` when unset or empty), refused unless it is
    at least ``low`` (or more than ``above``), at most ``high``, and ``whole`` if asked."""
    raw = env.get(name)
    if raw is None or raw == "":
        return float(default)
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ConfigError(f"{name}={raw!r} is not a finite number")
    if value < 0 and low == 0 and not above:  # the range starts at 0: say it plainly
        raise ConfigError(f"{name}={raw!r} must not be negative")
    too_low = value <= above if above is not None else value < low
    if too_low or value > high or (whole and value != int(value)):
        raise ConfigError(f"{name}={raw!r} must be {_range(low, above, high, whole)}")
    return value


def _range(low: float, above: float | None, high: float, whole: bool) -> str:
    """What a number may be, in words: "a whole number from 1 to 65535", "more than 0"."""
    kind = "a whole number" if whole else "a number"

    def text(value: float) -> str:
        return f"{value:g}" if value < 1e6 else f"{value:,.0f}"

    if above is not None:
        most = f" and at most {text(high)}" if high < math.inf else ""
        return f"{kind} above {text(above)}{most}"
    if high < math.inf:
        return f"{kind} from {text(low)} to {text(high)}"
    return f"{kind} of {text(low)} or more"


def _rules(name: str, path: str) -> Rules:
    """Read and validate the rules file named by ``KUZET_RULES`` (or its old name)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{name}={path!r} cannot be read ({exc.strerror}); point it at a "
            "copy of detectors/rules.toml, or unset it for the defaults"
        ) from None
    return parse_rules(text, path)


def _value_or_file(env: Mapping[str, str], var: str) -> tuple[str, str | None, str | None]:
    """A secret given as ``var`` or as a file named by ``var_FILE`` (not both): the name to
    cite in errors, the value, and the file's path."""
    value, path = env.get(var) or None, env.get(f"{var}_FILE") or None
    if value and path:
        raise ConfigError(f"set {var} or {var}_FILE, not both")
    return (f"{var}_FILE={path!r}" if path else var), value, path


def _web_token(env: Mapping[str, str]) -> str | None:
    """The web token from ``KUZET_WEB_TOKEN`` or the file ``KUZET_WEB_TOKEN_FILE`` names."""
    name, token, path = _value_or_file(env, "KUZET_WEB_TOKEN")
    if path:
        try:
            token = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
            raise ConfigError(
                f"{name} cannot be read ({why}); point it at the file holding the token"
            ) from None
        if not token:
            raise ConfigError(f"{name} is empty; write the token into it, or unset it")
    if token is not None and not re.fullmatch(r"[\x21-\x7e]+", token):
        # The token travels in an HTTP header: printable ASCII without spaces.
        raise ConfigError(f"{name}: the token must be printable ASCII without spaces")
    return token


#: Bytes of a state key, at least: HMAC-SHA256's own strength.
STATE_KEY_BYTES = 32
#: Distinct byte values a state key must have, at least: 32 random bytes have ~30, and
#: fewer than 16 in any length is a pattern ("00...", "deadbeef" repeated), not a secret.
STATE_KEY_DISTINCT = 16
_STATE_KEY_HOWTO = (
    f"at least {2 * STATE_KEY_BYTES} hex digits of a random key, e.g. `openssl rand -hex 32`"
)


def _state_key(env: Mapping[str, str]) -> bytes | None:
    """The state key from ``KUZET_STATE_KEY`` or the file ``KUZET_STATE_KEY_FILE`` names.

    Hex only: its length says how much secret there is, a passphrase's does not.
    """
    name, text, path = _value_or_file(env, "KUZET_STATE_KEY")
    if path:
        text = _secret_file(name, path).decode("ascii", errors="replace")
    if text is None:
        return None
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise ConfigError(f"{name} is not hex: it must hold {_STATE_KEY_HOWTO}") from None
    if len(key) < STATE_KEY_BYTES:
        raise ConfigError(f"{name} holds {len(key)} bytes: it must hold {_STATE_KEY_HOWTO}")
    if len(set(key)) < STATE_KEY_DISTINCT:
        raise ConfigError(f"{name} is a pattern, not a random key: it must hold {_STATE_KEY_HOWTO}")
    return key


def _secret_file(name: str, path: str) -> bytes:
    """The bytes of a file holding a secret, refused unless it is its owner's alone.

    The owner must be the user running Kuzet or root; group and others may
    neither read nor write it (a writer could choose the secret).
    """
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below; fstat of what was opened
    except OSError as exc:
        raise ConfigError(
            f"{name} cannot be read ({exc.strerror}); point it at the file holding the secret"
        ) from None
    with handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{name} is not a regular file")
        if info.st_uid not in (os.getuid(), 0):
            raise ConfigError(
                f"{name} belongs to another user (uid {info.st_uid}); it must belong to the "
                "user running Kuzet (or root)"
            )
        if info.st_mode & 0o077:
            raise ConfigError(
                f"{name} may be read or written by other users (mode "
                f"{stat.S_IMODE(info.st_mode):04o}); make it its owner's alone: chmod 600 {path}"
            )
        return handle.read(64 * 1024)
