"""Every Prometheus series the gateway emits, in one place.

Each gateway instance owns a ``GatewayMetrics`` bound to its own registry, so several gateways in one
process (tests) never share counters. Names follow two conventions on purpose:

* ``otelcol_*`` receiver/exporter counters in the OpenTelemetry Collector's shape, so existing collector
  dashboards work unchanged;
* ``driftlock_*`` names from the operations runbook ("Key Metrics to Monitor"), so its alert rules work.

Label values are always from small fixed sets (signal, transport, severity, status class, profile...):
never a stream id or trace id. The one open-ended label, ``service``, is capped (``LabelCap``): the first
``incidents.metrics_max_services`` services keep their name, later ones are reported as ``other``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

SIGNAL_ITEMS = {"traces": "spans", "metrics": "metric_points", "logs": "log_records"}
"""OTLP signal name -> the collector's item noun used in metric names."""

SEVERITIES = ("low", "medium", "high", "critical")
STREAM_TYPES = ("traces", "metrics", "logs")
OTHER = "other"


class LabelCap:
    """Bounds the values of one label: the first ``limit`` distinct values are kept, later ones become
    ``other`` (thread-safe; a value once kept stays kept)."""

    def __init__(self, limit: int):
        self.limit = limit
        self._kept: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._kept:
            return value
        with self._lock:
            if len(self._kept) < self.limit:
                self._kept.add(value)
                return value
        return OTHER


@dataclass
class GatewayMetrics:
    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))
    max_services: int = 100
    """Distinct ``service`` label values before the rest are reported as ``other``."""

    def __post_init__(self) -> None:
        r = self.registry
        self.service_label = LabelCap(self.max_services)
        # --- receiver (collector-shaped), one series per item kind, labelled by transport (grpc|http)
        self.receiver_accepted = {
            sig: Counter(f"otelcol_receiver_accepted_{noun}", f"{noun} accepted by the receiver",
                         ["transport"], registry=r)
            for sig, noun in SIGNAL_ITEMS.items()
        }
        self.receiver_refused = {
            sig: Counter(f"otelcol_receiver_refused_{noun}", f"{noun} refused by the receiver",
                         ["transport", "reason"], registry=r)
            for sig, noun in SIGNAL_ITEMS.items()
        }
        # --- exporter (collector-shaped)
        self.exporter_sent = {
            sig: Counter(f"otelcol_exporter_sent_{noun}", f"{noun} delivered downstream", registry=r)
            for sig, noun in SIGNAL_ITEMS.items()
        }
        self.exporter_send_failed = {
            sig: Counter(f"otelcol_exporter_send_failed_{noun}",
                         f"{noun} dropped after a permanent failure or exhausted retries", ["reason"],
                         registry=r)
            for sig, noun in SIGNAL_ITEMS.items()
        }
        self.exporter_enqueue_failed = {
            sig: Counter(f"otelcol_exporter_enqueue_failed_{noun}",
                         f"{noun} refused because the export queue was full", registry=r)
            for sig, noun in SIGNAL_ITEMS.items()
        }
        self.exporter_partial_rejected = Counter(
            "driftlock_exporter_partial_rejected_items",
            "items the downstream reported as rejected through partial_success (never retried)",
            ["signal"], registry=r)
        self.exporter_retries = Counter(
            "driftlock_exporter_retries", "export attempts retried after a retryable failure",
            ["signal"], registry=r)
        self.exporter_queue_size = Gauge(
            "otelcol_exporter_queue_size", "requests waiting in the export queue (memory and spool)",
            registry=r)
        self.exporter_queue_capacity = Gauge(
            "otelcol_exporter_queue_capacity", "capacity of the export queue in requests", registry=r)
        self.exporter_spool_bytes = Gauge(
            "driftlock_exporter_spool_bytes", "bytes held in the persistent export spool", registry=r)
        # --- admission control and rate limits on ingest
        self.ingest_throttled = Counter(
            "driftlock_ingest_throttled_requests",
            "ingest requests answered UNAVAILABLE/429/503 with a retry hint", ["transport", "reason"],
            registry=r)
        self.inflight_items = Gauge("driftlock_ingest_inflight_items", "items admitted, not yet done",
                                    registry=r)
        self.inflight_bytes = Gauge("driftlock_ingest_inflight_bytes", "bytes admitted, not yet done",
                                    registry=r)
        self.transit_bytes = Gauge("driftlock_ingest_transit_bytes",
                                   "OTLP/HTTP body bytes being read (part of the in-flight bytes)",
                                   registry=r)
        self.ingest_queue_delay = Gauge(
            "driftlock_ingest_queue_delay_seconds",
            "how far behind a queue every request passes is: the event loop, the decode threads (new "
            "requests are refused beyond receiver.admission.max_queue_delay_seconds)", ["queue"], registry=r)
        # --- the memory limiter (receiver.memory_limiter)
        self.memory_limiter_state = Gauge(
            "driftlock_memory_limiter_state",
            "0 accepting, 1 refusing ingest (resident memory at or above the soft limit), 2 also above the "
            "hard limit (freeing memory)", registry=r)
        self.memory_limiter_refused = Counter(
            "driftlock_memory_limiter_refused_requests",
            "ingest requests refused with a retry hint because memory was above the soft limit",
            ["transport"], registry=r)
        self.memory_limiter_rss = Gauge("driftlock_memory_limiter_rss_bytes",
                                        "resident memory at the memory limiter's last check", registry=r)
        self.memory_limiter_limit = Gauge("driftlock_memory_limiter_limit_bytes",
                                          "the memory limiter's limits (soft: refusing starts)", ["limit"],
                                          registry=r)
        # --- slow and hostile HTTP clients (both uvicorn servers; server = otlp_http | api)
        self.http_connections = Gauge("driftlock_http_open_connections", "open HTTP connections",
                                      ["server"], registry=r)
        self.http_connections_cut = Counter(
            "driftlock_http_connections_cut",
            "HTTP connections closed by a limit: header_timeout, body_timeout, header_too_large, "
            "body_too_large, evicted (slowest, to admit a new one), over_limit (new, every slot busy)",
            ["server", "reason"], registry=r)
        # --- runbook: business metrics
        self.anomalies_detected = Counter(
            "driftlock_anomalies_detected", "anomalous windows detected (service capped, the rest 'other')",
            ["stream_type", "severity", "service"], registry=r)
        # --- incidents (one per fault of a stream) and their notifications
        self.incidents_open = Gauge(
            "driftlock_incidents_open", "incidents open now, by the peak severity so far (service capped)",
            ["signal", "service", "severity"], registry=r)
        self.incidents_total = Counter(
            "driftlock_incidents", "incidents opened, by their severity at opening (service capped)",
            ["signal", "service", "severity"], registry=r)
        self.false_incident_rate_declared = Gauge(
            "driftlock_false_incident_rate_declared",
            "the profile's declared false incidents per stream per million normal events", ["profile"],
            registry=r)
        self.false_incident_rate_measured = Gauge(
            "driftlock_false_incident_rate_measured",
            "incidents operators marked false positives per million events scored, per profile (from the "
            "store: every stream and incident it holds)", ["profile"], registry=r)
        self.notifications_sent = Counter(
            "driftlock_notifications_sent", "notifications a receiver accepted (receiver: alertmanager, "
            "webhook)", ["receiver"], registry=r)
        self.notifications_failed = Counter(
            "driftlock_notifications_failed",
            "notifications given up: permanent (the receiver refused them), retries_exhausted, outbox_full",
            ["receiver", "reason"], registry=r)
        self.notifications_retried = Counter(
            "driftlock_notifications_retried", "notification attempts that failed and will be retried",
            ["receiver"], registry=r)
        self.notify_outbox = Gauge(
            "driftlock_notify_outbox_entries", "notifications waiting in a receiver's outbox", ["receiver"],
            registry=r)
        self.anomaly_processing_duration = Histogram(
            "driftlock_anomaly_processing_duration_seconds",
            "time from receipt of a batch to its anomaly decision",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r)
        self.cbad_events_per_second = Gauge(
            "driftlock_cbad_events_per_second",
            "spans and log records scored per second by the cbad detector (recent rate)", registry=r)
        self.numeric_events_per_second = Gauge(
            "driftlock_numeric_events_per_second",
            "metric points scored per second by the numeric detector (recent rate)", registry=r)
        self.cbad_compression_ratio = Gauge(
            "driftlock_cbad_compression_ratio", "mean compression ratio of recent windows",
            ["stream_type"], registry=r)
        self.anomaly_ncd_threshold = Gauge(
            "driftlock_anomaly_ncd_threshold",
            "the default profile's false-alarm target per window (the runbook's name; windows are flagged "
            "by their calibrated p-value, not by an NCD threshold)", registry=r)
        self.streams_live = Gauge("driftlock_streams_live", "streams with a detector in memory", registry=r)
        self.streams_evicted = Counter("driftlock_streams_evicted",
                                       "least recently used streams snapshotted and evicted", registry=r)
        self.detector_events = Counter("driftlock_detector_events", "events fed to detectors",
                                       ["stream_type"], registry=r)
        self.detector_skipped_points = Counter(
            "driftlock_detector_skipped_points",
            "points not scored, forwarded all the same: reason=nan|inf (the detector could not score them), "
            "cumulative_reference (a cumulative series' first point: the base of its deltas), "
            "cumulative_reset (a restarted cumulative series), out_of_order (not newer than its series' last "
            "point), empty_interval (a cumulative histogram's mean over an interval without values)",
            ["signal", "reason"], registry=r)
        self.cumulative_series_evicted = Counter(
            "driftlock_cumulative_series_evicted",
            "cumulative metric series a stream forgot to stay within its bound (least recently seen first; "
            "the next point of such a series is a reference again)", ["signal"], registry=r)
        self.detector_dropped_events = Counter(
            "driftlock_detector_dropped_events",
            "events not scored: the detection queue was full, the request could not be read or scoring "
            "failed (forwarding unaffected)",
            ["stream_type"], registry=r)
        self.detector_state_save_failures = Counter(
            "driftlock_detector_state_save_failures",
            "detector snapshots the store did not take (an evicted stream then warms up again)", registry=r)
        # --- stream ownership across gateways (scale-out; streams/ownership.py)
        self.ownership_conflicts = Counter(
            "driftlock_stream_ownership_conflicts",
            "streams found sent to two gateways at once (a client not routing by the ring); side=owner: "
            "this gateway scores the stream, side=requester: another does and this one forwards its events "
            "unscored", ["side"], registry=r)
        self.stream_handoffs = Counter(
            "driftlock_stream_handoffs",
            "stream leases that changed gateway: direction=in|out; reason=handoff (snapshot passed from a "
            "live owner), lapsed (taken from a gateway whose heartbeat stopped: older snapshot), lost (taken "
            "from this gateway while its heartbeat lapsed)", ["direction", "reason"], registry=r)
        self.ownership_unscored_events = Counter(
            "driftlock_ownership_unscored_events",
            "events forwarded unscored because another gateway owns their stream (a conflict, or late "
            "events after a move)", ["stream_type"], registry=r)
        self.streams_awaiting_handoff = Gauge(
            "driftlock_streams_awaiting_handoff",
            "streams whose events wait here for another gateway to hand the stream over", registry=r)
        self.ownership_heartbeat_failures = Counter(
            "driftlock_ownership_heartbeat_failures",
            "heartbeats of this gateway's instance the store did not take", registry=r)
        self.annotation_skipped = Counter(
            "driftlock_annotation_skipped",
            "requests forwarded before their detection decision (reason=budget: past detection.budget_ms; "
            "reason=backlog: detection was behind, forwarded at once; their events are scored afterwards "
            "and their anomalies stored, only the annotation is lost)",
            ["signal", "reason"], registry=r)
        self.detection_capped_attributes = Counter(
            "driftlock_detection_capped_attributes",
            "attributes left out of detection by its caps (per item, distinct keys per request); they are "
            "still forwarded", ["signal", "reason"], registry=r)
        self.annotation_failures = Counter(
            "driftlock_annotation_failures",
            "requests forwarded unannotated because annotating them failed", ["signal"], registry=r)
        self.exporter_discarded = Counter(
            "driftlock_exporter_discarded_items",
            "items consumed without forwarding because no downstream is configured (detection only)",
            ["signal"], registry=r)
        # --- store
        self.store_written = Counter("driftlock_store_anomalies_written", "anomaly rows written",
                                     ["backend"], registry=r)
        self.store_rows_written = Counter(
            "driftlock_store_incident_rows_written",
            "incident and score-series rows written (upserts: replays and updates count again)",
            ["backend", "table"], registry=r)
        self.store_spooled = Gauge("driftlock_store_spool_rows",
                                   "anomaly rows waiting in the local spool for the store", registry=r)
        self.store_write_failures = Counter("driftlock_store_write_failures",
                                            "failed store write attempts (rows are spooled)", registry=r)
        self.store_spool_refused = Counter(
            "driftlock_store_spool_refused_rows",
            "anomaly rows refused because the local spool was full (store unreachable too long)", registry=r)
        self.store_rejected = Counter(
            "driftlock_store_rejected_rows",
            "anomaly rows the database refused permanently (kept in the spool's rejected.jsonl)", registry=r)
        self.store_pruned = Counter(
            "driftlock_store_pruned_rows",
            "stream records and detector snapshots deleted because their stream went unseen too long",
            ["table"], registry=r)
        # --- local disk
        self.data_dir_bytes = Gauge("driftlock_data_dir_bytes",
                                    "bytes allocated under data_dir (spools, embedded store)", registry=r)
        self.data_dir_budget_bytes = Gauge(
            "driftlock_data_dir_budget_bytes",
            "size budget of data_dir; at it, new ingest is refused (0: unlimited)", registry=r)
        # --- runbook: system metrics
        self.http_requests = Counter("driftlock_http_requests", "API requests on :8080 by status code",
                                     ["status"], registry=r)
        self.http_request_duration = Histogram(
            "driftlock_http_request_duration_seconds", "API request duration on :8080", registry=r)
        self.db_connections = Gauge(
            "driftlock_db_connections_total",
            "database pool connections by state (open, idle, in_use, waiting, max, failed)",
            ["connection_state"], registry=r)
        self.memory_allocated = Gauge("driftlock_memory_allocated_bytes",
                                      "resident memory of the process (RSS)", registry=r)
        self.memory_heap = Gauge("driftlock_memory_heap_bytes",
                                 "memory allocated by the Python heap allocator and numpy (approx.)",
                                 registry=r)
        self.goroutines = Gauge(
            "driftlock_goroutines",
            "Python analogue of the runbook's goroutines: live threads plus pending asyncio tasks",
            registry=r)
        self.rate_limited = Counter(
            "driftlock_rate_limited_requests",
            "requests refused by a token bucket (surface: ingest, or api for the /v1 buckets)", ["surface"],
            registry=r)
        self.key_verifications = Counter(
            "driftlock_api_key_verifications",
            "API keys presented: result = cached, verified, wrong_secret, unknown, malformed, busy",
            ["result"], registry=r)

    def count_accepted(self, signal: str, transport: str, n: int) -> None:
        if n:
            self.receiver_accepted[signal].labels(transport).inc(n)

    def count_refused(self, signal: str, transport: str, reason: str, n: int) -> None:
        if n:
            self.receiver_refused[signal].labels(transport, reason).inc(n)
