"""Optional integrations, one per module, each behind a guarded import naming its extra.

- :mod:`orchestration.backends.otel`: OpenTelemetry traces of runs (``[otel]``).
- :mod:`orchestration.backends.redis_limits`: provider rate limits shared by every
  process through Redis (``[redis]``).
"""
