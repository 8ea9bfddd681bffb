"""Prometheus metrics of calico-confd, on a registry of its own (tests can make many).

Served on `--metrics-port` (off by default) at `/metrics`:

- `confd_template_load_success`: 1 when the last load of `conf.d/` and `templates/` (at start
  or after an edit) succeeded and is in use; 0 when it failed and the previous templates keep
  running.
- `confd_template_errors_total`: template or template-resource loads that failed (TOML, syntax,
  render or check_cmd of the new templates).
- `confd_template_loads_total`: template loads taken into use (the start-up one included).
- `confd_template_last_load_timestamp_seconds`: when the templates in use were loaded.
- `confd_passes_total`, `confd_pass_failures_total`: processing passes, and those in which a
  resource failed.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.template_load_success = Gauge(
            "confd_template_load_success",
            "1 if the last template load succeeded and is in use, 0 if it failed (the previous "
            "templates keep running).", registry=r)
        self.template_errors = Counter(
            "confd_template_errors", "Template or template-resource loads that failed.",
            registry=r)
        self.template_loads = Counter(
            "confd_template_loads", "Template loads taken into use.", registry=r)
        self.template_loaded_at = Gauge(
            "confd_template_last_load_timestamp_seconds",
            "Unix time the templates in use were loaded.", registry=r)
        self.passes = Counter("confd_passes", "Processing passes.", registry=r)
        self.pass_failures = Counter(
            "confd_pass_failures", "Processing passes in which a resource failed.", registry=r)

    def templates_loaded(self) -> None:
        self.template_load_success.set(1)
        self.template_loads.inc()
        self.template_loaded_at.set_to_current_time()

    def templates_failed(self) -> None:
        self.template_load_success.set(0)
        self.template_errors.inc()
