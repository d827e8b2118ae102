"""Load test of the worker's scoring endpoint, POST /predict.

Each simulated client sends transactions for cards and terminals the simulator knows
(``c00000``.. and ``t00000``.., as ``sentinel produce --customers 500 --terminals 1000``
names them) with log-normal amounts, from a seeded generator: the same ``--seed`` replays the
same requests. The body is the worker's /predict contract: ``id`` is the card id, plus
``terminal_id``, ``amount`` and a unique ``transaction_id`` (``locust-<n>``). A response counts
as a failure unless it is 200 with a score in [0, 1], a decision and the same transaction id.
Cards the worker has never seen score with empty state; they still answer 200.

    locust -f bench/locustfile.py --host http://127.0.0.1:6066 --headless -u 20 -r 20 -t 60s \
        --seed 7 --cards 500 --terminals 1000

See docs/benchmarks.md, "Load tests".
"""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

from locust import HttpUser, constant, events, task

DECISIONS = {"approve", "review", "decline"}
_user_numbers = itertools.count()


@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    parser.add_argument("--seed", type=int, default=7, help="seed of the request generator")
    parser.add_argument("--cards", type=int, default=500, help="known card ids c00000..")
    parser.add_argument("--terminals", type=int, default=1000, help="known terminals t00000..")


def transaction(rng: random.Random, ident: int, cards: int, terminals: int) -> dict[str, Any]:
    """One /predict body: a known card (``id``) and terminal, a log-normal amount (median ~33)."""
    amount = rng.lognormvariate(3.5, 1.0)
    if rng.random() < 0.01:
        amount *= 50  # the occasional large payment
    return {
        "id": f"c{rng.randrange(cards):05d}",
        "terminal_id": f"t{rng.randrange(terminals):05d}",
        "amount": round(amount, 2),
        "transaction_id": f"locust-{ident}",
    }


class ScoringClient(HttpUser):
    """A client that scores transactions back to back."""

    wait_time = constant(0)

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.number = next(_user_numbers)
        self.rng = random.Random(f"{options.seed}-{self.number}")
        self.cards, self.terminals = options.cards, options.terminals
        self.ids = itertools.count(self.number * 1_000_000_000 + 1)

    @task
    def predict(self) -> None:
        body = transaction(self.rng, next(self.ids), self.cards, self.terminals)
        with self.client.post("/predict", json=body, name="/predict",
                              catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
                return
            try:
                result = response.json()
            except json.JSONDecodeError:
                response.failure("response is not JSON")
                return
            score = result.get("score")
            if not isinstance(score, int | float) or not 0 <= score <= 1:
                response.failure(f"score out of range: {score!r}")
            elif result.get("decision") not in DECISIONS:
                response.failure(f"unknown decision: {result.get('decision')!r}")
            elif result.get("transaction_id") != body["transaction_id"]:
                response.failure(f"answer for another id: {result.get('transaction_id')!r}")
            else:
                response.success()
