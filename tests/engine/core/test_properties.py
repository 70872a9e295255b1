"""Property tests of the pure core over random graphs and random changes (hypothesis).

Random DAGs, random graphs with loops through switches, and random sequences of changes
interleaved with the run: every node ends in a terminal state, nothing starts before its
inputs, a run never waits on nothing (no deadlock), refused changes change nothing and
running nodes are never touched, and the fold is deterministic (the same events give the
same state, ready set and schedule).  See tests/engine/core/graphs.py for the rules checked.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from .graphs import Driver, GraphSpec, check_refold, graphs

EXAMPLES = settings(max_examples=150, deadline=None)
SEEDS = st.integers(0, 2**32)  # the driver's choices (which node starts or finishes, which change)


@EXAMPLES
@given(graphs(), SEEDS, st.integers(1, 4))
def test_random_dags_run_to_an_end_with_every_rule_kept(spec: GraphSpec, seed: int, slots: int) -> None:
    driver = Driver(spec, random.Random(seed), concurrency=slots)
    state = driver.run()
    assert state.status == "completed"
    check_refold(driver.log, state)


@EXAMPLES
@given(graphs(loops=True), SEEDS, st.floats(0, 0.2))
def test_random_graphs_with_switch_loops_and_failures_end(
    spec: GraphSpec, seed: int, fail_rate: float
) -> None:
    driver = Driver(spec, random.Random(seed), fail_rate=fail_rate)
    state = driver.run()
    assert state.status in ("completed", "failed")
    check_refold(driver.log, state)


@EXAMPLES
@given(graphs(loops=True, capped=True), SEEDS)
def test_random_changes_while_running_keep_every_rule(spec: GraphSpec, seed: int) -> None:
    driver = Driver(spec, random.Random(seed))
    state = driver.run(mutate=Driver.random_change)
    assert state.status in ("completed", "failed")
    check_refold(driver.log, state)
