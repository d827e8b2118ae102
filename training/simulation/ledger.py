"""The simulated transactions as parallel numpy arrays, before they become a DataFrame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DAY_S = 86_400


@dataclass
class Ledger:
    """Columns of simulated transactions; ``time_s`` counts seconds from the start date."""

    customer: np.ndarray
    terminal: np.ndarray
    time_s: np.ndarray
    amount: np.ndarray
    scenario: np.ndarray

    @property
    def day(self) -> np.ndarray:
        return self.time_s // DAY_S

    def __len__(self) -> int:
        return len(self.time_s)

    @classmethod
    def concat(cls, parts: list[Ledger]) -> Ledger:
        return cls(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__)
        )

    @classmethod
    def of_fraud(
        cls,
        customer: np.ndarray,
        terminal: np.ndarray,
        time_s: np.ndarray,
        amount: np.ndarray,
        scenario: int,
    ) -> Ledger:
        return cls(
            customer=customer.astype(np.int64),
            terminal=terminal.astype(np.int64),
            time_s=time_s.astype(np.int64),
            amount=np.round(amount, 2),
            scenario=np.full(len(time_s), scenario, dtype=np.int64),
        )
