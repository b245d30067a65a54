"""``GET /metrics``: what the server counts, read as Prometheus reads it, and the shipped
alert rules only name metrics that exist."""

from __future__ import annotations

import imaplib
import re
import smtplib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from mailstead.core import metrics
from mailstead.testing.server import ServerThread

ALERTS = Path(__file__).parents[2] / "docs" / "monitoring" / "alerts.yml"
PASSWORD = "metrics password"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    config = {"auth": {"allow_plaintext": True}}
    with ServerThread(tmp_path_factory.mktemp("metrics"), config) as srv:
        srv.add_user("ann@example.org", PASSWORD)
        yield srv


def _scrape(server: ServerThread) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"http://127.0.0.1:{server.port('http')}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
           **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_protocol_traffic_is_counted(server: ServerThread) -> None:
    before = _scrape(server)
    with smtplib.SMTP("127.0.0.1", server.port("smtp")) as smtp:
        smtp.sendmail("s@remote.example", ["ann@example.org"], b"Subject: m\r\n\r\nhi\r\n")
        refused = smtp.sendmail  # an unknown recipient is refused at RCPT, not counted
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            refused("s@remote.example", ["nobody@example.org"], b"Subject: m\r\n\r\nhi\r\n")
    with imaplib.IMAP4("127.0.0.1", server.port("imap")) as imap:
        imap.login("ann@example.org", PASSWORD)
        imap.select("INBOX")
        with pytest.raises(imaplib.IMAP4.error):
            imap.login("ann@example.org", "wrong")  # LOGIN in the selected state: NO
    with imaplib.IMAP4("127.0.0.1", server.port("imap")) as imap, \
            pytest.raises(imaplib.IMAP4.error):
        imap.login("ann@example.org", "wrong password")
    after = _scrape(server)

    def grew(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert grew("mailstead_messages_received_total", outcome="accepted") == 1
    assert grew("mailstead_connections_total", listener="smtp") == 1
    assert grew("mailstead_connections_total", listener="imap") == 2
    assert grew("mailstead_commands_total", protocol="smtp", command="DATA") == 1
    assert grew("mailstead_commands_total", protocol="imap", command="SELECT") == 1
    assert grew("mailstead_auth_failures_total") == 1
    assert grew("mailstead_command_duration_seconds_count", protocol="imap") >= 4
    assert grew("mailstead_store_commit_duration_seconds_count") >= 1
    assert _value(after, "mailstead_queue_recipients") == 0
    assert _value(after, "mailstead_start_time_seconds") > 1.7e9
    assert grew("mailstead_http_requests_total", status="2xx") >= 1


def test_metrics_are_only_for_the_allowed_networks(tmp_path: Path) -> None:
    with ServerThread(tmp_path, {"http": {"metrics_from": ["10.0.0.0/8"]}}) as server:
        response = httpx.get(f"http://127.0.0.1:{server.port('http')}/metrics")
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"


def _defined_samples() -> set[str]:
    """Every sample name the registry can expose (counters get _total, histograms
    _bucket/_count/_sum), whether or not it has been observed yet."""
    names: set[str] = set()
    for family in metrics.REGISTRY.collect():
        if family.type == "counter":
            names |= {family.name + "_total"}
        elif family.type == "histogram":
            names |= {family.name + suffix for suffix in ("_bucket", "_count", "_sum")}
        else:
            names.add(family.name)
    return names


def test_every_metric_an_alert_names_exists() -> None:
    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"]
             for rule in group["rules"]]
    assert len(rules) >= 15
    defined = _defined_samples()
    named: set[str] = set()
    for rule in rules:
        assert rule["alert"] and rule["expr"] and rule["annotations"]["summary"]
        named |= set(re.findall(r"\bmailstead_[a-z_]+", rule["expr"]))
    assert named, "no rule names a mailstead metric"
    assert named <= defined, f"alert rules name metrics that do not exist: {named - defined}"
