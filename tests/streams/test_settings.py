"""Settings.from_env: defaults, overrides, the Kafka security options, and clear errors."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import faust
import pytest
from faust.types.auth import AuthProtocol, SASLMechanism

from detectors.errors import ConfigError
from detectors.events import STREAMS
from detectors.inspections.moratorium import MoratoriumRules
from detectors.inspections.rules import InspectionRules, default_rules_text, parse_rules
from detectors.registry import DetectionConfig
from streams.app import _credentials
from streams.settings import KafkaSecurity, Settings

SASL = {
    "KUZET_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "KUZET_KAFKA_SASL_USERNAME": "kuzet",
    "KUZET_KAFKA_SASL_PASSWORD": "kuzet-secret",
}


def test_defaults():
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.broker == "127.0.0.1:9092"
    assert settings.app_id == "kuzet"
    assert dict(settings.topics) == {s: s for s in STREAMS}
    assert settings.alerts_topic == "alerts"
    assert settings.dlq_topic("payments") == "payments.dlq"
    assert settings.security == KafkaSecurity()
    assert settings.security.protocol == "PLAINTEXT"
    assert settings.security.sasl_mechanism == "SCRAM-SHA-512"
    assert (settings.web_host, settings.web_port) == ("127.0.0.1", 6066)
    assert (settings.batch_size, settings.batch_within) == (1000, 0.05)
    assert settings.producer_linger == 0.005
    assert settings.state_dir == Path(".kuzet")
    assert settings.log_level == "info"
    assert settings.detection == DetectionConfig()
    assert settings.detection.timezone == "Asia/Almaty"
    assert settings.detection.allowed_lateness == 24 * 3600.0
    assert settings.detection.inspections == InspectionRules()
    assert settings.detection.inspections.moratorium == MoratoriumRules()


def test_numbers_and_names_are_read_and_converted():
    settings = Settings.from_env(
        {
            "KUZET_BROKER": "kafka://10.0.0.1:9092",
            "KUZET_APP_ID": "kuzet-test",
            "KUZET_WEB_HOST": "0.0.0.0",
            "KUZET_WEB_PORT": "7000",
            "KUZET_BATCH_SIZE": "200",
            "KUZET_BATCH_WITHIN_MS": "10",
            "KUZET_PRODUCER_LINGER_MS": "0",
            "KUZET_STATE_DIR": "/var/lib/kuzet",
            "KUZET_LOG_LEVEL": "DEBUG",
            "KUZET_TIMEZONE": "UTC",
            "KUZET_ALLOWED_LATENESS_HOURS": "1.5",
            "KUZET_DEDUP_MAX_IDS": "10",
        }
    )
    assert settings.broker == "kafka://10.0.0.1:9092"
    assert settings.app_id == "kuzet-test"
    assert (settings.web_host, settings.web_port) == ("0.0.0.0", 7000)
    assert settings.batch_size == 200
    assert settings.batch_within == pytest.approx(0.01)
    assert settings.producer_linger == 0.0
    assert settings.state_dir == Path("/var/lib/kuzet")
    assert settings.log_level == "debug"
    detection = settings.detection
    assert detection.timezone == "UTC"
    assert detection.allowed_lateness == 1.5 * 3600
    assert detection.dedup_max_ids == 10


def test_topic_prefix_applies_to_every_topic_and_per_topic_overrides():
    settings = Settings.from_env(
        {
            "KUZET_TOPIC_PREFIX": "prod.",
            "KUZET_TOPIC_PAYMENTS": "bank-transfers",
            "KUZET_TOPIC_ALERTS": "findings",
        }
    )
    assert dict(settings.topics) == {
        "payments": "prod.bank-transfers",
        "payroll": "prod.payroll",
        "inspections": "prod.inspections",
    }
    assert settings.topic("payments") == "prod.bank-transfers"
    assert settings.alerts_topic == "prod.findings"
    assert settings.dlq_topic("payments") == "prod.bank-transfers.dlq"
    assert settings.dlq_topic("inspections") == "prod.inspections.dlq"


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL", "sasl_plaintext"])
@pytest.mark.parametrize(
    "credentials",
    [{}, {"KUZET_KAFKA_SASL_USERNAME": "kuzet"}, {"KUZET_KAFKA_SASL_PASSWORD": "secret"}],
    ids=["neither", "no password", "no username"],
)
def test_sasl_without_username_and_password_is_refused(protocol, credentials):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"KUZET_KAFKA_SECURITY_PROTOCOL": protocol, **credentials})
    message = str(error.value)
    assert f"KUZET_KAFKA_SECURITY_PROTOCOL={protocol.upper()}" in message
    assert "KUZET_KAFKA_SASL_USERNAME" in message
    assert "KUZET_KAFKA_SASL_PASSWORD" in message


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"KUZET_KAFKA_SECURITY_PROTOCOL": "TLS"},
            "KUZET_KAFKA_SECURITY_PROTOCOL='TLS' is not one of "
            "PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
        ),
        (
            {**SASL, "KUZET_KAFKA_SASL_MECHANISM": "SCRAM-SHA-1"},
            "KUZET_KAFKA_SASL_MECHANISM='SCRAM-SHA-1' is not one of "
            "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
        ),
        (
            {"KUZET_TIMEZONE": "Mars/Olympus_Mons"},
            "KUZET_TIMEZONE='Mars/Olympus_Mons' is not a tz database zone (e.g. Asia/Almaty)",
        ),
        (
            {"KUZET_TIMEZONE": "../etc/passwd"},
            "KUZET_TIMEZONE='../etc/passwd' is not a tz database zone",
        ),
        ({"KUZET_WEB_PORT": "http"}, "KUZET_WEB_PORT='http' is not a number"),
        ({"KUZET_BATCH_SIZE": "1k"}, "KUZET_BATCH_SIZE='1k' is not a number"),
        (
            {"KUZET_ALLOWED_LATENESS_HOURS": "-1"},
            "KUZET_ALLOWED_LATENESS_HOURS='-1' must not be negative",
        ),
    ],
)
def test_bad_values_raise_config_error_naming_the_variable(env, expected):
    with pytest.raises(ConfigError) as error:
        Settings.from_env(env)
    assert expected in str(error.value)


def test_protocol_and_mechanism_are_case_insensitive():
    security = Settings.from_env(
        {
            **SASL,
            "KUZET_KAFKA_SECURITY_PROTOCOL": "sasl_plaintext",
            "KUZET_KAFKA_SASL_MECHANISM": "scram-sha-256",
        }
    ).security
    assert (security.protocol, security.sasl_mechanism) == ("SASL_PLAINTEXT", "SCRAM-SHA-256")


def test_aiokafka_kwargs_plaintext():
    assert Settings.from_env({}).security.aiokafka_kwargs() == {"security_protocol": "PLAINTEXT"}


def test_aiokafka_kwargs_sasl_plaintext():
    security = Settings.from_env(SASL).security
    assert security.ssl_context() is None
    assert security.aiokafka_kwargs() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "kuzet",
        "sasl_plain_password": "kuzet-secret",
    }
    assert "kuzet-secret" not in repr(security)  # the password stays out of logs


def test_aiokafka_kwargs_sasl_ssl_adds_a_verifying_context():
    security = Settings.from_env({**SASL, "KUZET_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}).security
    kwargs = security.aiokafka_kwargs()
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["ssl_context"].check_hostname


def test_credentials_plaintext_is_none():
    assert _credentials(Settings.from_env({}).security) is None


@pytest.mark.parametrize(
    ("mechanism", "expected"),
    [
        (None, SASLMechanism.SCRAM_SHA_512),  # the default
        ("SCRAM-SHA-256", SASLMechanism.SCRAM_SHA_256),
        ("PLAIN", SASLMechanism.PLAIN),
    ],
)
def test_credentials_sasl_plaintext(mechanism, expected):
    env = dict(SASL)
    if mechanism:
        env["KUZET_KAFKA_SASL_MECHANISM"] = mechanism
    credentials = _credentials(Settings.from_env(env).security)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.mechanism is expected
    assert credentials.protocol is AuthProtocol.SASL_PLAINTEXT
    assert (credentials.username, credentials.password) == ("kuzet", "kuzet-secret")
    assert credentials.ssl_context is None


def test_credentials_sasl_ssl_and_ssl():
    sasl_ssl = _credentials(
        Settings.from_env({**SASL, "KUZET_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}).security
    )
    assert isinstance(sasl_ssl, faust.SASLCredentials)
    assert sasl_ssl.protocol is AuthProtocol.SASL_SSL
    assert sasl_ssl.ssl_context is not None

    ssl_only = _credentials(Settings.from_env({"KUZET_KAFKA_SECURITY_PROTOCOL": "SSL"}).security)
    assert isinstance(ssl_only, faust.SSLCredentials)
    assert ssl_only.protocol is AuthProtocol.SSL


@pytest.mark.parametrize(
    ("broker", "bootstrap", "faust_broker"),
    [
        ("127.0.0.1:9092", "127.0.0.1:9092", "kafka://127.0.0.1:9092"),
        ("kafka://127.0.0.1:9094", "127.0.0.1:9094", "kafka://127.0.0.1:9094"),
        ("a:9092,b:9092", "a:9092,b:9092", "kafka://a:9092;kafka://b:9092"),
        ("kafka://a:9092;kafka://b:9092", "a:9092,b:9092", "kafka://a:9092;kafka://b:9092"),
        ("kafka://a:9092; kafka://b:9092;", "a:9092,b:9092", "kafka://a:9092;kafka://b:9092"),
    ],
)
def test_bootstrap_servers_and_faust_broker(broker, bootstrap, faust_broker):
    settings = Settings.from_env({"KUZET_BROKER": broker})
    assert settings.bootstrap_servers == bootstrap
    assert settings.faust_broker == faust_broker


@pytest.mark.parametrize("broker", ["kafka://a:9092,kafka://b:9092", "a:9092, b:9092"])
def test_comma_list_of_urls_or_with_spaces(broker):
    # Guards a fixed bug: only ';' was a separator, so these kept inner prefixes/spaces.
    settings = Settings.from_env({"KUZET_BROKER": broker})
    assert settings.bootstrap_servers == "a:9092,b:9092"
    assert settings.faust_broker == "kafka://a:9092;kafka://b:9092"


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf"])
def test_non_finite_numbers_are_config_errors(raw):
    # Guards a fixed bug: float() takes these, so they escaped as ValueError/OverflowError.
    with pytest.raises(ConfigError, match="KUZET_WEB_PORT"):
        Settings.from_env({"KUZET_WEB_PORT": raw})


RULES = """
[moratorium]
covered_sizes = ["micro", "small", "medium"]
exempt_bases = []

[[moratorium.windows]]
start = 2020-01-01
end = 2021-01-01

[[moratorium.windows]]
start = 2024-01-01
end = 2025-01-01

[repeat_inspection]
alert_at = 4
"""


def test_inspection_rules_file_is_read_from_kuzet_inspection_rules(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(RULES)
    rules = Settings.from_env({"KUZET_INSPECTION_RULES": str(path)}).detection.inspections
    assert rules.moratorium.windows == (
        (date(2020, 1, 1), date(2021, 1, 1)),
        (date(2024, 1, 1), date(2025, 1, 1)),
    )
    assert rules.moratorium.sizes == frozenset({"micro", "small", "medium"})
    assert rules.moratorium.exempt_bases == frozenset()
    assert rules.repeat.alert_at == 4.0
    assert rules.repeat.critical_at == 5.0  # left out: the default
    assert rules.inspector == InspectionRules().inspector


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[moratorium\n", "not valid TOML"),
        ("[moratorum]\n", ": moratorum: unknown key"),
        ("[moratorium]\ncovered_sizes = 'small'", "moratorium.covered_sizes: expected a list"),
        (
            "[[moratorium.windows]]\nstart = 2023-01-01\nend = 2020-01-01",
            "moratorium.windows[1]: empty window: start 2023-01-01 is not before end 2020-01-01",
        ),
        (
            "[[moratorium.windows]]\nstart = '2020-01-01'\nend = 2021-01-01",
            "moratorium.windows[1].start: expected a date like 2020-01-01",
        ),
        ("[repeat_inspection]\nalert_at = -1", "repeat_inspection.alert_at: expected a positive"),
        ("[repeat_inspection]\nalert_at = 6", "critical_at must not be below alert_at"),
        ("[inspector_anomaly]\nz = 3", "inspector_anomaly.z: unknown key"),
    ],
)
def test_a_bad_rules_file_is_refused_naming_the_file_and_key(tmp_path, text, expected):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"KUZET_INSPECTION_RULES": str(path)})
    assert str(path) in str(error.value)
    assert expected in str(error.value)


def test_a_missing_rules_file_is_refused_with_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match=r"KUZET_INSPECTION_RULES=.*cannot be read.*rules\.toml"):
        Settings.from_env({"KUZET_INSPECTION_RULES": str(tmp_path / "nope.toml")})


def test_the_shipped_rules_file_holds_the_contract_defaults():
    assert parse_rules(default_rules_text()) == InspectionRules()
