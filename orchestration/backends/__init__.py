"""Optional integrations, one per module, each behind a guarded import naming its extra.

- :mod:`orchestration.backends.otel`: OpenTelemetry traces of runs (``[otel]``).
"""
