"""The run engine: plans and scheduling, the event log, run state, the driver."""
