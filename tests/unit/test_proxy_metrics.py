"""Proxy metrics: change times from the API objects, and the Prometheus text."""

from __future__ import annotations

from agent.proxy.metrics import BUCKETS, TRIGGER_TIME_ANNOTATION, ProxyMetrics, change_time


def test_trigger_annotation_wins_with_its_fraction() -> None:
    endpoint_slice = {
        "metadata": {
            "annotations": {TRIGGER_TIME_ANNOTATION: "2026-01-01T00:00:01.250000Z"},
            "creationTimestamp": "2026-01-01T00:00:05Z",
        }
    }
    assert change_time(None, [endpoint_slice]) == 1767225601.25


def test_without_annotation_the_newest_write_counts() -> None:
    service = {"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}}
    endpoint_slice = {
        "metadata": {
            "creationTimestamp": "2026-01-01T00:00:01Z",
            "managedFields": [{"time": "2026-01-01T00:00:03Z"}, {"time": "bad"}],
        }
    }
    assert change_time(service, [endpoint_slice]) == 1767225603.0
    assert change_time(None, []) is None


def test_prometheus_text() -> None:
    metrics = ProxyMetrics()
    metrics.record_sync("nftables", 0.003, 42)
    metrics.record_programming(0.05)
    metrics.record_programming(-1.0)  # clock skew never reports a negative latency
    text = metrics.render()
    assert 'kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="0.002"} 0' in text
    assert 'kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="0.004"} 1' in text
    assert "kubeproxy_network_programming_duration_seconds_count 2" in text
    assert 'kubeproxy_network_programming_duration_seconds_bucket{le="0.001"} 1' in text
    assert 'minikube_py_proxy_rules{mode="nftables"} 42' in text
    assert text.count("_bucket{") == 2 * (len(BUCKETS) + 1)
