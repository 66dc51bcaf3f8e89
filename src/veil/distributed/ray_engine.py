"""The Ray engine: images in batches through a pool of actors that each load the
pipeline once, videos one Ray task each; results stream back to the driver.

Workers write outputs themselves, atomically, to DEST (a file system every node sees);
the driver only appends results to the manifest. Failure handling has two layers:

- a job that fails inside a worker (corrupt input, backend error) is retried by
  :class:`~veil.distributed.local.JobWorker` and then returned as a ``failed`` record;
- a worker process that dies (killed, OOM, node lost) is restarted by Ray
  (``max_restarts``) and the batch it was running is replayed on the new process
  (``max_task_retries`` for actors, ``max_retries`` for video tasks). A replayed job
  rewrites the same target atomically, and the driver keeps one record per target, so
  nothing is lost or counted twice; a batch whose retries run out is recorded failed.

``ray`` is imported inside functions only: without the extra, :class:`RayEngine` raises
:class:`~veil.errors.MissingExtraError` when it runs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from typing import Any

from veil.config import DetectorConfig, RunConfig
from veil.distributed.local import JobWorker, OnRecord, WorkItem
from veil.distributed.manifest import Record
from veil.errors import MissingExtraError
from veil.runner import is_video

__all__ = ["RayEngine"]

log = logging.getLogger(__name__)

DEFAULT_OBJECT_STORE = 300 * 1024 * 1024
"""Object store for a Ray instance the engine starts itself: only paths and records
travel through it (workers read and write files directly), so it can stay small."""


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise MissingExtraError("ray", "ray", "the ray engine") from exc
    return ray


def worker_config(config: RunConfig, cpus: int) -> RunConfig:
    """``config`` for a worker owning ``cpus`` cores: as many threads, and CenterFace
    inference threads capped to match (no oversubscription between actors)."""
    det = config.detector
    if det.name == "centerface" and "threads" not in det.options:
        options = {**det.options, "threads": cpus}
        det = DetectorConfig(name=det.name, threshold=det.threshold, options=options)
    return dataclasses.replace(config, detector=det, workers=cpus)


class BatchActor:
    """A Ray actor (wrapped with ``ray.remote`` at run time): one pipeline per process."""

    def __init__(self, config: dict[str, Any], settings: str, retries: int, run_id: str) -> None:
        cfg = RunConfig.from_dict(config)
        self.worker = JobWorker(cfg, settings, retries=retries, run_id=run_id)

    def pid(self) -> int:
        return os.getpid()

    def run_batch(self, items: list[WorkItem]) -> list[Record]:
        return list(self.worker.run_many(items))


def run_video_task(
    config: dict[str, Any], settings: str, retries: int, run_id: str, item: WorkItem
) -> Record:
    """One video as one Ray task (its own pipeline: model load is small next to a video)."""
    worker = JobWorker(RunConfig.from_dict(config), settings, retries=retries, run_id=run_id)
    return worker.run(item)


class RayEngine:
    """Run on a Ray cluster.

    Args:
        address: ``"auto"`` (a cluster started with ``ray start`` on this machine),
            ``"ray://host:10001"`` (Ray Client) or ``None``: use the running ``ray.init``
            session, or start a local one (``init_kwargs``, small object store).
        actors: image actors (``0``: cluster CPUs // ``cpus_per_actor``).
        cpus_per_actor: CPUs each actor (and each video task) reserves and uses.
        batch_size: images per actor call; larger amortizes the per-call overhead.
        retries: retries of a failing job inside a worker, and replays of a call whose
            worker died.
    """

    name = "ray"

    def __init__(
        self,
        config: RunConfig,
        settings: str,
        *,
        retries: int = 2,
        run_id: str = "",
        address: str | None = None,
        actors: int = 0,
        cpus_per_actor: int = 1,
        batch_size: int = 16,
        init_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.config = worker_config(config, cpus_per_actor)
        self.settings, self.retries, self.run_id = settings, retries, run_id
        self.address = address
        self.n_actors, self.cpus_per_actor = actors, cpus_per_actor
        self.batch_size = max(1, batch_size)
        self.init_kwargs = init_kwargs or {}
        self.actors: list[Any] = []
        self._started_ray = False

    def describe(self) -> dict[str, Any]:
        return {
            "engine": self.name,
            "address": self.address,
            "actors": len(self.actors) or self.n_actors,
            "cpus_per_actor": self.cpus_per_actor,
            "batch_size": self.batch_size,
        }

    def run(self, items: Sequence[WorkItem], on_record: OnRecord) -> None:
        ray = _ray()
        self._connect(ray)
        try:
            images = [i for i in items if not is_video(i.job.source)]
            videos = [i for i in items if is_video(i.job.source)]
            if images:
                self._run_images(ray, images, on_record)
            if videos:
                self._run_videos(ray, videos, on_record)
        finally:
            self.close()

    def close(self) -> None:
        """Release the actors (and the Ray instance this engine started, if any)."""
        ray = _ray()
        self._release_actors(ray)
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False

    def _release_actors(self, ray: Any) -> None:
        """Kill the actors so their CPUs go to the video tasks (actors hold them while alive)."""
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []

    def _connect(self, ray: Any) -> None:
        if ray.is_initialized():
            return
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if self.address is None:
            kwargs["object_store_memory"] = DEFAULT_OBJECT_STORE
        kwargs.update(self.init_kwargs)
        ray.init(address=self.address or "local", **kwargs)
        self._started_ray = True

    def _remote_args(self) -> tuple[dict[str, Any], str, int, str]:
        return self.config.to_dict(), self.settings, self.retries, self.run_id

    def _start_actors(self, ray: Any, n_batches: int) -> None:
        n = self.n_actors or int(ray.cluster_resources().get("CPU", 1)) // self.cpus_per_actor
        actor_cls = ray.remote(BatchActor).options(
            num_cpus=self.cpus_per_actor,
            max_restarts=self.retries + 1,
            max_task_retries=self.retries + 1,
        )
        args = self._remote_args()
        self.actors = [actor_cls.remote(*args) for _ in range(max(1, min(n, n_batches)))]

    def _run_images(self, ray: Any, items: list[WorkItem], on_record: OnRecord) -> None:
        from ray.util import ActorPool

        size = self.batch_size
        batches = [items[i : i + size] for i in range(0, len(items), size)]
        self._start_actors(ray, len(batches))
        pool = ActorPool(self.actors)
        for batch in batches:
            pool.submit(lambda actor, b: actor.run_batch.remote(b), batch)
        outstanding = {str(i.job.target): i for i in items}
        reason = ""
        while pool.has_next():
            try:
                records = pool.get_next_unordered()
            except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as exc:
                reason = f"worker lost, retries exhausted: {type(exc).__name__}: {exc}"
                log.error("a batch failed: %s", reason)
                continue
            for record in records:
                outstanding.pop(record.target, None)
                on_record(record)
        self._release_actors(ray)
        for item in outstanding.values():
            on_record(self._failed(item, reason or "no result from the ray engine"))

    def _run_videos(self, ray: Any, items: list[WorkItem], on_record: OnRecord) -> None:
        task = ray.remote(run_video_task).options(
            num_cpus=self.cpus_per_actor, max_retries=self.retries + 1, retry_exceptions=False
        )
        args = self._remote_args()
        pending = {task.remote(*args, item): item for item in items}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            item = pending.pop(ready[0])
            try:
                on_record(ray.get(ready[0]))
            except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as exc:
                reason = f"video task failed: {type(exc).__name__}: {exc}"
                on_record(self._failed(item, reason))
            except ray.exceptions.WorkerCrashedError as exc:
                on_record(self._failed(item, f"worker crashed, retries exhausted: {exc}"))

    def _failed(self, item: WorkItem, reason: str) -> Record:
        kind = "video" if is_video(item.job.source) else "image"
        return Record.for_job(
            item.job,
            "failed",
            reason=reason,
            settings=self.settings,
            kind=kind,
            run_id=self.run_id,
        )
