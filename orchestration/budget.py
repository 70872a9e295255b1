"""A run's spending cap: admit a call's worst case before it is sent, settle to the real cost after.

Admission is bookkeeping with no await between the check and the reservation, so any
number of concurrent calls in one event loop can never take the run past its cap.  A call
that does not fit *now* waits (in arrival order, woken when a call in flight settles, no
polling) and tries again; it is refused only when it could not fit even with nothing in
flight, since only then can waiting never help.  Costs that are only known after the fact
(an orchestrator that reports ``AgentResult.cost`` for calls made outside the framework)
are recorded with :meth:`Budget.charge`; once the cap is reached no new work is scheduled.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .errors import BudgetExceededError
from .events import EventType, StreamEvent
from .utils import format_usd

__all__ = ["Budget", "Reservation", "format_usd", "unsettled_reservations"]

# Absorbs float noise in sums of prices (a cap of 0.3 must admit 0.1 + 0.2).
_EPSILON = 1e-12


@dataclass(frozen=True, slots=True)
class Reservation:
    """Money held for one call until it settles."""

    id: int
    amount: float


@dataclass
class Budget:
    """Spending state for one run.  ``cap=None`` means unlimited.

    ``carried`` is the part of ``spent`` that is not known to have been spent: calls that
    were in flight when an earlier process died, counted at their worst case.
    """

    cap: float | None = None
    spent: float = 0.0
    reserved: float = 0.0
    carried: float = 0.0
    _ids: itertools.count[int] = field(default_factory=itertools.count, repr=False)
    _open: dict[int, float] = field(default_factory=dict, repr=False)
    _waiters: deque[list[asyncio.Future[None]]] = field(default_factory=deque, repr=False)
    _watchers: list[asyncio.Future[None]] = field(default_factory=list, repr=False)

    @property
    def remaining(self) -> float | None:
        """What can still be reserved, or None without a cap."""
        if self.cap is None:
            return None
        return max(0.0, self.cap - self.spent - self.reserved)

    @property
    def exhausted(self) -> bool:
        """True once spending alone has reached the cap (no new work should start)."""
        return self.cap is not None and self.spent >= self.cap

    @property
    def in_flight(self) -> int:
        """How many reservations are open (calls admitted and not yet settled)."""
        return len(self._open)

    def reserve(self, amount: float) -> Reservation:
        """Hold ``amount`` USD now, or raise :class:`BudgetExceededError` if it does not fit now."""
        amount = max(0.0, amount)
        if self.cap is not None and self.spent + self.reserved + amount > self.cap + _EPSILON:
            raise BudgetExceededError(
                f"budget of {format_usd(self.cap)} reached: {format_usd(self.spent)} spent, "
                f"{format_usd(self.reserved)} reserved by calls in flight, this call may cost up to "
                f"{format_usd(amount)}",
                cap=self.cap,
                spent=self.spent,
                requested=amount,
            )
        return self._hold(amount)

    def try_reserve(self, amount: float) -> Reservation | None:
        """Hold ``amount`` if it fits now; None if it fits only once calls in flight settle.

        Raises :class:`BudgetExceededError` when it cannot fit even with nothing in flight
        (settling can only add to what is spent, so waiting would never help).
        """
        amount = max(0.0, amount)
        cap = self.cap
        if cap is None:
            return self._hold(amount)
        if self.spent + amount > cap + _EPSILON:
            raise self._refusal(amount)
        if self.spent + self.reserved + amount > cap + _EPSILON:
            return None
        return self._hold(amount)

    async def admit(self, amount: float, ready: Callable[[], bool] | None = None) -> Reservation:
        """Hold ``amount``, waiting for calls in flight to settle while it does not fit.

        Callers are admitted in arrival order.  ``ready()`` is asked just before holding
        (with no await in between): it returns False to wait for a settlement too (e.g. a
        guardrail on spend that only the calls in flight breach), or raises to refuse.
        """
        if not self._waiters:
            held = self._try(amount, ready)
            if held is not None:
                return held
        loop = asyncio.get_running_loop()
        waiter: list[asyncio.Future[None]] = [loop.create_future()]
        self._waiters.append(waiter)
        try:
            while True:
                await waiter[0]
                if self._waiters[0] is waiter:
                    held = self._try(amount, ready)
                    if held is not None:
                        return held
                waiter[0] = loop.create_future()
        finally:
            self._waiters.remove(waiter)
            self._wake()  # the next in line gets its turn (a settlement may be waiting for it)

    def next_settlement(self) -> asyncio.Future[None]:
        """A future done when the next reservation settles or is released (cancel it to stop
        waiting); for a call that waits on numbers kept elsewhere (the store's ledger)."""
        self._watchers = [w for w in self._watchers if not w.done()]
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._watchers.append(future)
        return future

    def settle(self, reservation: Reservation, actual: float) -> None:
        """Release ``reservation`` and record the call's real cost."""
        held = self._open.pop(reservation.id, None)
        if held is None:
            raise ValueError(f"reservation {reservation.id} was already settled or released")
        self.reserved -= held
        if not self._open:
            self.reserved = 0.0  # no drift from float sums once nothing is in flight
        self.spent += max(0.0, actual)
        self._wake()
        watchers, self._watchers = self._watchers, []
        for watcher in watchers:
            if not watcher.done():
                watcher.set_result(None)

    def release(self, reservation: Reservation) -> None:
        """Release ``reservation`` without spending (the call failed before costing anything)."""
        self.settle(reservation, 0.0)

    def charge(self, amount: float) -> None:
        """Record a cost that was not reserved (reported after the fact)."""
        self.spent += max(0.0, amount)

    def _try(self, amount: float, ready: Callable[[], bool] | None) -> Reservation | None:
        # ready() must raise rather than return False when nothing is in flight (or it would wait forever)
        if ready is not None and not ready():
            return None
        return self.try_reserve(amount)

    def _hold(self, amount: float) -> Reservation:
        reservation = Reservation(next(self._ids), amount)
        self._open[reservation.id] = amount
        self.reserved += amount
        return reservation

    def _wake(self) -> None:
        if self._waiters:
            head = self._waiters[0][0]
            if not head.done():
                head.set_result(None)

    def _refusal(self, amount: float) -> BudgetExceededError:
        cap = self.cap if self.cap is not None else 0.0
        carried = (
            f" ({format_usd(self.carried)} of it by calls in flight when the run was interrupted)"
            if self.carried
            else ""
        )
        return BudgetExceededError(
            f"budget of {format_usd(cap)} cannot fit this call even with nothing else in flight: "
            f"{format_usd(self.spent)} spent{carried}, this call may cost up to {format_usd(amount)}; "
            f"a budget of at least {format_usd(self.spent + amount, up=True)} would fit it",
            cap=cap,
            spent=self.spent,
            requested=amount,
        )


def unsettled_reservations(events: Iterable[StreamEvent]) -> tuple[float, int]:
    """The worst case held by calls whose ``call_reserved`` event has no settlement in
    ``events`` (they were in flight when the process driving the run died), and their count."""
    held: dict[int, float] = {}
    for event in events:
        kind = event.event_type
        if kind is EventType.CALL_RESERVED:
            held[event.seq] = float(event.data.get("amount") or 0.0)
        elif kind is EventType.COST_UPDATE or kind is EventType.CALL_RELEASED:
            reservation = event.data.get("reservation")
            if isinstance(reservation, int):
                held.pop(reservation, None)
    return sum(held.values()), len(held)
