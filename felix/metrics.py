"""Prometheus metrics (Calico's names), on a registry of our own so tests can make many."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Summary


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.apply_time = Summary("felix_int_dataplane_apply_time_seconds",
                                  "Time taken to apply a dataplane update.", registry=r)
        self.failures = Counter("felix_int_dataplane_failures",
                                "Number of failed dataplane applies.", registry=r)
        self.resyncs = Counter("felix_resyncs_started",
                               "Number of kernel re-reads (start-up and refresh).", registry=r)
        self.restore_calls = Counter("felix_iptables_restore_calls",
                                     "Number of iptables-restore calls.", registry=r)
        self.restore_errors = Counter("felix_iptables_restore_errors",
                                      "Number of failed iptables-restore calls.", registry=r)
        self.save_calls = Counter("felix_iptables_save_calls",
                                  "Number of iptables-save calls.", registry=r)
        self.lines = Counter("felix_iptables_lines_executed",
                             "Number of iptables-restore lines executed.", registry=r)
        self.rules = Gauge("felix_iptables_rules", "Number of our programmed iptables rules.",
                           ["ip_version", "table"], registry=r)
        self.chains = Gauge("felix_iptables_chains", "Number of our iptables chains.",
                            ["ip_version", "table"], registry=r)
        self.routes = Gauge("felix_route_table_num_routes", "Number of our programmed routes.",
                            registry=r)
        self.endpoints = Gauge("felix_active_local_endpoints",
                               "Number of local workload endpoints.", registry=r)
