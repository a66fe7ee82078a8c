"""One job per bag, in this process or on a Ray cluster: the engine behind `evaluate` and
`pseudo-label` over many bags.

    run_jobs(fn, items, ray=None)            # here, one after another
    run_jobs(fn, items, ray='auto', jobs=2)  # Ray: the running cluster, else a local instance
    run_jobs(fn, items, ray='ray://head:10001')

fn(item) runs once per item (a bag path) and returns a picklable result; an exception in it
fails that item only. The outcome lists every item in the order given, with its result or the
reason it failed, so a caller merges results exactly as the single-process path does and never
drops a failed bag silently. Ray is imported only when asked for: the plain path needs no Ray.
"""
from __future__ import annotations

import copy
import os
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable


class FleetError(RuntimeError):
    """Ray was asked for and cannot be used (not installed, no cluster at the address)."""


@dataclass
class JobOutcome:
    """What became of one item: its result, or why it failed."""
    item: Any
    result: Any = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the job returned a result."""
        return self.error is None


@dataclass
class FleetReport:
    """Every item's outcome, in input order, and how the jobs ran."""
    outcomes: list = field(default_factory=list)
    engine: str = 'local'
    workers: int = 1
    seconds: float = 0.0

    @property
    def failed(self) -> list:
        """Outcomes of the items that failed."""
        return [o for o in self.outcomes if not o.ok]

    @property
    def results(self) -> list:
        """Results of the items that succeeded, in input order."""
        return [o.result for o in self.outcomes if o.ok]

    def failures(self) -> list:
        """[{'item': str, 'reason': str}] for a summary file."""
        return [{'item': str(o.item), 'reason': o.error} for o in self.failed]


def _reason(exc: BaseException) -> str:
    """Why a job failed, in one line: the message of this package's errors and of bad input
    (ValueError, OSError) as it is; anything else with its type, as it is unexpected."""
    text = ' '.join(str(exc).split())
    expected = type(exc).__module__.startswith('hydranet_ros') or isinstance(exc, (ValueError, OSError))
    if text and expected:
        return text
    return f'{type(exc).__name__}: {text}' if text else \
        f'{type(exc).__name__} ' + traceback.format_exc(limit=2).strip().splitlines()[-1]


def _run_one(fn: Callable, item) -> JobOutcome:
    start = time.perf_counter()
    try:
        return JobOutcome(item, fn(item), None, time.perf_counter() - start)
    except Exception as exc:   # noqa: BLE001 - one bad bag must not stop the others; the reason is kept
        return JobOutcome(item, None, _reason(exc), time.perf_counter() - start)


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit='bag')


def connect_ray(address: str, workers: int | None = None):
    """Ray, initialised: address 'auto' joins the cluster this machine belongs to (RAY_ADDRESS
    or one started with `ray start`) and otherwise starts a local instance with `workers` CPUs;
    any other address (ray://host:10001, host:6379) must answer."""
    try:
        import ray
    except ImportError as exc:
        raise FleetError("--ray needs Ray: pip install 'ray==2.60.0' (or leave --ray out to run here)") from exc
    if ray.is_initialized():
        return ray
    kwargs = dict(ignore_reinit_error=True, include_dashboard=False, logging_level='WARNING',
                  log_to_driver=False)
    try:
        if address == 'auto':
            if os.environ.get('RAY_ADDRESS'):
                ray.init(address=os.environ['RAY_ADDRESS'], **kwargs)
            else:
                try:
                    ray.init(address='auto', **kwargs)
                except (ConnectionError, RuntimeError):
                    ray.init(num_cpus=workers or os.cpu_count(), **kwargs)
        else:
            _probe(address)
            ray.init(address=address, **kwargs)
    except FleetError:
        raise
    except Exception as exc:   # noqa: BLE001 - every way Ray can fail to start is one message here
        raise FleetError(f'cannot start or reach Ray at {address!r}: {exc}') from exc
    return ray


def _probe(address: str, timeout_s: float = 5.0):
    """FleetError at once when nothing listens at a host:port address (Ray itself waits minutes)."""
    import socket
    hostport = address.split('://', 1)[-1]
    host, _, port = hostport.rpartition(':')
    if not host or not port.isdigit():
        raise FleetError(f"--ray {address!r}: expected 'auto', HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip('[]'), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise FleetError(f'cannot start or reach Ray at {address!r}: nothing answers there ({exc})') from exc


def run_jobs(fn: Callable, items, ray: str | None = None, jobs: int = 1, progress: bool = False,
             desc: str = 'bags') -> FleetReport:
    """fn(item) for every item: here one after another (ray None), or one Ray task per item
    (ray 'auto' or an address; at most `jobs` at once when Ray starts locally). fn must be a
    module-level function for Ray to ship it."""
    items = list(items)
    start = time.perf_counter()
    bar = _progress(len(items), desc, progress and len(items) > 1)
    if ray is None:
        outcomes = []
        for item in items:
            outcomes.append(_run_one(fn, item))
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        return FleetReport(outcomes, 'local', 1, time.perf_counter() - start)
    rt = connect_ray(ray, max(1, int(jobs)))
    remote = rt.remote(num_cpus=1, max_retries=0)(_run_one)
    fn_ref = rt.put(fn)
    pending = {remote.remote(fn_ref, item): k for k, item in enumerate(items)}
    outcomes: list = [None] * len(items)
    while pending:
        done, _ = rt.wait(list(pending), num_returns=1)
        for ref in done:
            k = pending.pop(ref)
            try:   # a private copy: Ray hands numpy arrays over read-only (zero-copy), merging writes into them
                outcomes[k] = copy.deepcopy(rt.get(ref))
            except Exception as exc:   # noqa: BLE001 - a worker that died: the bag is reported, not lost
                outcomes[k] = JobOutcome(items[k], None, f'Ray task failed: {type(exc).__name__}: {exc}')
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    workers = int(rt.cluster_resources().get('CPU', 1))
    return FleetReport(outcomes, f'ray ({ray})', workers, time.perf_counter() - start)


def shutdown_ray():
    """Stop the local Ray instance this process started (no-op without Ray)."""
    try:
        import ray
    except ImportError:
        return
    if ray.is_initialized():
        ray.shutdown()
