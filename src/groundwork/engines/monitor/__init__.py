"""Monitoring served models: the prediction log, drift against the training data, latency and errors.

    groundwork serve digits@production              # logs every request (--log-sample 0.1: a tenth)
    groundwork monitor digits@production --since 1h # drift, latency p50/p99, error rate, throughput

Modules: :mod:`.log` (the background writer of the prediction log), :mod:`.segment`
(a segment's Parquet rows and its summary), :mod:`.sketch` (mergeable histograms and
counts), :mod:`.drift` (PSI, Kolmogorov-Smirnov, Wasserstein, chi-squared, thresholds),
:mod:`.reference` (the reference data, found through lineage), :mod:`.report` (what
``groundwork monitor`` prints), :mod:`.metrics` (the log's Prometheus metrics).
"""
