"""A run's spending cap: reserve the worst case before a call, settle to the real cost after.

Pure bookkeeping with no awaits between the check and the reservation, so any number of
concurrent calls in one event loop can never take the run past its cap.  Costs that are
only known after the fact (an orchestrator that calls its provider directly and reports
``AgentResult.cost``) are recorded with :meth:`Budget.charge`; once the cap is reached no
new work is scheduled.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from .errors import BudgetExceededError

__all__ = ["Budget", "Reservation"]


@dataclass(frozen=True, slots=True)
class Reservation:
    """Money held for one call until it settles."""

    id: int
    amount: float


@dataclass
class Budget:
    """Spending state for one run.  ``cap=None`` means unlimited."""

    cap: float | None = None
    spent: float = 0.0
    reserved: float = 0.0
    _ids: itertools.count[int] = field(default_factory=itertools.count, repr=False)
    _open: dict[int, float] = field(default_factory=dict, repr=False)

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

    def reserve(self, amount: float) -> Reservation:
        """Hold ``amount`` USD or raise :class:`BudgetExceededError` if it does not fit."""
        amount = max(0.0, amount)
        if self.cap is not None and self.spent + self.reserved + amount > self.cap + 1e-12:
            raise BudgetExceededError(
                f"budget of ${self.cap:.4f} reached: ${self.spent:.4f} spent, "
                f"${self.reserved:.4f} reserved by calls in flight, this call may cost up to ${amount:.4f}",
                cap=self.cap,
                spent=self.spent,
                requested=amount,
            )
        reservation = Reservation(next(self._ids), amount)
        self._open[reservation.id] = amount
        self.reserved += amount
        return reservation

    def settle(self, reservation: Reservation, actual: float) -> None:
        """Release ``reservation`` and record the call's real cost."""
        held = self._open.pop(reservation.id, None)
        if held is None:
            raise ValueError(f"reservation {reservation.id} was already settled or released")
        self.reserved -= held
        self.spent += max(0.0, actual)

    def release(self, reservation: Reservation) -> None:
        """Release ``reservation`` without spending (the call failed before costing anything)."""
        self.settle(reservation, 0.0)

    def charge(self, amount: float) -> None:
        """Record a cost that was not reserved (reported after the fact)."""
        self.spent += max(0.0, amount)
