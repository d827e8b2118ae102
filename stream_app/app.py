"""The Faust adapter: the app, its two agents and tables, the model follower and the web views.

Only this module imports faust. Topics (see docs/streaming.md): transactions (keyed by card) ->
agent ``cards`` (table ``cards``) -> ``<app_id>-by-terminal`` (keyed by terminal, CRC32
partitioned like librdkafka so it is co-partitioned with labels) + labels -> agent ``terminals``
(table ``terminals``) -> verdicts, shadow, drift alerts; bad input -> dead letters.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Any

import faust
from faust.types import TP
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST

from features import CardState, TerminalState
from sentinel.infra.admin import create_topics
from sentinel.infra.kafka_io import read_changelog, read_range
from sentinel.settings import Settings
from sentinel.topics import TopicSpec, catalog
from stream_app import faust_commit, faust_fastpath, gc_policy, predict
from stream_app.errors import PredictInputError
from stream_app.metrics import WorkerMetrics
from stream_app.models import ServingModels, Slot
from stream_app.pipeline import Scorer, Source, StateCache, Topics
from stream_app.sequence import Gap
from stream_app.sink import Sink
from stream_app.state import decode_value, encode_value

logger = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 5.0
METRICS_TYPE = CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4"  # aiohttp sets charset


def handoff_topic(settings: Settings) -> str:
    return f"{settings.topics.prefix}{settings.worker.app_id}-by-terminal"


def _sources(events: list[Any]) -> list[Source]:
    out = []
    for e in events:
        m = e.message
        out.append(Source(m.topic, m.partition, m.offset, int(m.timestamp * 1000), m.key, m.value))
    return out


class Worker:
    """Builds the Faust app around a :class:`Scorer`; ``app`` is what faust runs."""

    def __init__(self, settings: Settings, registry: Any, drift: Any = None) -> None:
        self.settings = settings
        s, t = settings.scoring, settings.topics
        self.metrics = WorkerMetrics()
        self.models = ServingModels(registry, on_swap=self._on_swap)
        self.drift = drift
        self.assigned = False
        self.gc_pauses = gc_policy.PauseObserver(self.metrics.gc_pause)
        self.gc_settling = gc_policy.Settling()
        self.gc_freeze = gc_policy.FreezeSurvivors()
        datadir = settings.data_dir.resolve() / "faust" / settings.worker.app_id
        datadir.mkdir(parents=True, exist_ok=True)
        self.app = app = faust.App(
            settings.worker.app_id,
            broker=f"kafka://{settings.bootstrap_servers}",
            key_serializer="raw", value_serializer="raw",
            web_enabled=True, web_bind=settings.worker.web_host, web_host=settings.worker.web_host,
            web_port=settings.worker.web_port, web_in_thread=False,
            datadir=str(datadir),
            store="memory://", topic_partitions=t.partitions,
            topic_replication_factor=t.replication_factor,
            broker_session_timeout=10.0, broker_heartbeat_interval=1.0,
            broker_commit_interval=0.25, consumer_auto_offset_reset="earliest",
            stream_buffer_maxsize=max(4096, 4 * s.batch_size),
            producer_linger=0.002, table_cleanup_interval=3600.0,
        )
        self.handoff = handoff_topic(settings)
        self.topics = Topics.of(settings, self.handoff)
        # key_type/value_type (not a Schema) decide the changelog's serializers: Faust derives
        # the table's key_serializer from key_type and uses it to decode the changelog during
        # recovery; with a Schema alone it fell back to JSON keys and every raw key failed.
        # Values are kept as the changelog's bytes (stream_app.state.encode_value) and decoded
        # when a key is first used, so recovery is a plain copy.
        self.card_table = app.Table("cards", partitions=t.partitions, key_type=bytes,
                                    value_type=bytes, recovery_buffer_size=10_000)
        self.terminal_table = app.Table("terminals", partitions=t.partitions, key_type=bytes,
                                        value_type=bytes, recovery_buffer_size=10_000)
        self.sink = Sink(settings.librdkafka())
        self.scorer = Scorer(
            settings, self.topics, self.sink, self.models, self.metrics,
            self._cache(self.card_table, CardState, self.topics.transactions),
            self._cache(self.terminal_table, TerminalState, self.handoff), drift,
            fetch_gap=self._fetch_gap, verify_state=self._verify_state)
        self._wire()

    def _cache(self, table: Any, kind: Any, source: str) -> StateCache[Any]:
        """State over ``table``; written to the table's changelog by the Sink's librdkafka
        producer (not Faust's), so the commit's barrier covers it: the changelog is on the
        broker before the batch's source offsets can be committed."""
        store = _KeyView(table)
        changelog = f"{self.app.conf.id}-{table.name}-changelog"
        send, data = self.sink.send, table.data

        def persist(partition: int, key: str, value: dict[str, Any]) -> None:
            raw, encoded = key.encode(), encode_value(value)
            data[raw] = encoded
            send(changelog, raw, encoded, partition)

        def committed(partition: int) -> int | None:
            # Faust keeps the last committed offset per TP; the replay memory below it is dead.
            offsets = getattr(self.app.consumer, "_committed_offset", None)
            return None if offsets is None else offsets.get(TP(source, partition))

        return StateCache(store, kind.from_dict, kind, persist, committed)

    def ensure_topics(self) -> None:
        """Catalog topics plus the repartition topic (same partitions as labels)."""
        t = self.settings.topics
        specs = [*catalog(t), TopicSpec("handoff", self.handoff, "terminal_id", "Handoff",
                                        t.partitions, {"cleanup.policy": "delete",
                                                       "retention.ms": str(7 * 86_400_000)},
                                        "internal: card stage -> terminal stage")]
        create_topics(self.settings.librdkafka(), specs, t.replication_factor)

    # -- wiring ----------------------------------------------------------------------------------
    def _wire(self) -> None:
        app, s = self.app, self.settings.scoring
        tx_topic = app.topic(self.topics.transactions)
        stage2 = app.topic(self.handoff, self.topics.labels)
        events_topic = app.topic(self.settings.topics.name("model_events"))

        async def cards(stream: Any) -> None:
            async for events in stream.take_events(s.batch_size, within=s.batch_window_s):
                await self.scorer.cards_batch(_sources(events))

        async def terminals(stream: Any) -> None:
            async for events in stream.take_events(s.batch_size, within=s.batch_window_s):
                await self.scorer.terminals_batch(_sources(events))

        async def model_events(stream: Any) -> None:
            async for _ in stream:
                await self.models.refresh()
                self._ready_gauge()

        app.agent(tx_topic, name="cards")(cards)
        app.agent(stage2, name="terminals")(terminals)
        app.agent(events_topic, name="model-events")(model_events)

        @app.timer(self.settings.scoring.model_poll_interval_s, on_leader=False)
        async def poll_models() -> None:
            await self.models.refresh()
            self._ready_gauge()

        @app.task
        async def first_load() -> None:
            self.gc_pauses.install()
            await self.models.refresh()
            self._ready_gauge()
            self.gc_settling.started()
            self.gc_freeze.install()

        @app.timer(self.settings.worker.gc_settle_interval_s, on_leader=False)
        async def settle_gc() -> None:
            self.gc_settling.periodic()

        @app.on_partitions_assigned.connect  # type: ignore[arg-type]
        async def assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
            faust_fastpath.install(self.app.consumer)
            faust_commit.install(self.app.consumer, self.sink.barrier)
            faust_fastpath.drop_monitor(self.app)
            self.scorer.on_rebalance()
            self.assigned = any(tp.topic == self.topics.transactions for tp in assigned)
            self._ready_gauge()

        @app.on_before_shutdown.connect  # type: ignore[arg-type]
        async def shutting_down(sender: Any, **kwargs: Any) -> None:
            self.gc_pauses.remove()
            self.gc_freeze.remove()
            self.sink.close()
            _exit_after(SHUTDOWN_GRACE_S)

        self._views()

    async def _fetch_gap(self, gap: Gap) -> list[Source]:
        """Read a range the Faust consumer skipped straight from the broker, and mark it
        acknowledged in Faust's bookkeeping so that its commits move past it again."""
        conf = self.settings.librdkafka()
        msgs = await asyncio.get_running_loop().run_in_executor(
            None, read_range, conf, gap.topic, gap.partition, gap.start, gap.end)
        _mark_acked(self.app.consumer, TP(gap.topic, gap.partition), range(gap.start, gap.end))
        return [Source(gap.topic, gap.partition, m.offset() or 0, m.timestamp()[1], m.key(),
                       m.value() or b"") for m in msgs]

    async def _verify_state(self, name: str, partition: int) -> int:
        """Compare a table partition as Faust recovered it with its changelog (read with
        librdkafka to the end), repair the keys that differ and return how many did.
        Runs once per partition per assignment, before that partition's first batch."""
        table = self.card_table if name == "cards" else self.terminal_table
        changelog = f"{self.app.conf.id}-{table.name}-changelog"
        latest = await asyncio.get_running_loop().run_in_executor(
            None, read_changelog, self.settings.librdkafka(), changelog, partition)
        data = table.data
        wrong = [key for key, value in latest.items() if data.get(key) != value]
        for key in wrong:
            if latest[key] is None:
                data.pop(key, None)
            else:
                data[key] = latest[key]
        if wrong:
            logger.error("table %s partition %d: %d of %d keys differed from the changelog "
                         "after recovery; repaired from the changelog", name, partition,
                         len(wrong), len(latest))
            self.metrics.state_repairs.labels(table=name).inc(len(wrong))
        return len(wrong)

    def _on_swap(self, role: str, slot: Slot | None) -> None:
        self.metrics.model_swaps.labels(role=role).inc()
        self.metrics.set_model(role, slot.name if slot else None, slot.version if slot else None)
        if role == "champion" and self.drift is not None and slot is not None:
            self.drift.set_model_version(slot.version)
        self.gc_settling.swapped()  # the new model's objects live until the next swap

    @property
    def ready(self) -> bool:
        return self.models.champion is not None and self.assigned

    def _ready_gauge(self) -> None:
        self.metrics.worker_ready.set(1 if self.ready else 0)
        self.metrics.registry_up.set(1 if self.models.registry_up else 0)

    # -- http ------------------------------------------------------------------------------------
    def _views(self) -> None:
        worker = self

        class Predict(View):
            async def post(self, request: Request) -> Response:
                try:
                    body = await request.json()
                except ValueError:
                    return self.json({"errors": [{"field": "<body>", "reason": "not JSON"}]},
                                     status=422)
                return worker.predict(self, body)

        class Health(View):
            async def get(self, request: Request) -> Response:
                return self.json({"status": "alive", "ready": worker.ready,
                                  "partitions_assigned": worker.assigned,
                                  **worker.models.describe()})

        class Ready(View):
            async def get(self, request: Request) -> Response:
                worker._ready_gauge()
                body = {"ready": worker.ready, "champion": worker.models.champion is not None,
                        "partitions_assigned": worker.assigned}
                return self.json(body, status=200 if worker.ready else 503)

        class Metrics(View):
            async def get(self, request: Request) -> Response:
                worker._ready_gauge()
                return self.bytes(worker.metrics.render(),
                                  content_type=METRICS_TYPE)

        self.app.page("/predict")(Predict)
        self.app.page("/health")(Health)
        self.app.page("/ready")(Ready)
        self.app.page("/metrics")(Metrics)

    def predict(self, view: View, body: Any) -> Response:
        try:
            tx = predict.parse(body)
        except PredictInputError as exc:
            errors = [{"field": f, "reason": r} for f, r in exc.problems]
            return view.json({"errors": errors}, status=422)
        champion = self.models.champion
        if champion is None:
            return view.json({"error": "no @champion model is loaded"}, status=503)
        X = predict.features(tx, self.scorer.cards.peek(tx.card_id),
                             self.scorer.terminals.peek(tx.terminal_id), self.scorer.config)
        return view.json(predict.answer(tx, X, champion, self.models.candidate,
                                        self.settings.scoring.reason_codes,
                                        self.scorer.config.names))


def _exit_after(seconds: float) -> None:
    """Leave the process if it still runs ``seconds`` after Faust began to stop: the event
    loop closes in about a second, but executor threads (model loads, registry calls) and
    librdkafka handles could keep the interpreter alive. Delivery is at-least-once and the
    sink was flushed, so nothing is lost by not waiting for them."""

    def run() -> None:
        time.sleep(seconds)
        logger.warning("worker still alive %.0fs after shutdown began: exiting", seconds)
        logging.shutdown()
        os._exit(0)

    threading.Thread(target=run, name="shutdown-watchdog", daemon=True).start()


def _mark_acked(consumer: Any, tp: TP, offsets: range) -> None:
    """Add ``offsets`` to Faust's acknowledged offsets of ``tp`` (faust-streaming 0.15
    internals: ``_acked``, ``_acked_index``, ``_committed_offset``); without it a skipped
    offset that Faust never saw holds its commits back until the next rebalance."""
    try:
        committed = consumer._committed_offset[tp]
        index, acked = consumer._acked_index[tp], consumer._acked[tp]
    except (AttributeError, KeyError, TypeError):
        logger.warning("cannot mark %s acknowledged: Faust internals changed", tp)
        return
    for offset in offsets:
        if (committed is None or offset >= committed) and offset not in index:
            index.add(offset)
            acked.append(offset)


class _KeyView:
    """A str-keyed read view of a Faust table's store (whose keys are raw bytes)."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            raw = self._table.data.get(key.encode())
        except KeyError:
            return None
        return None if raw is None else decode_value(raw)
