"""Scale benchmark: the DAG's quick run against the old way and ``rclone check``, on the same data.

Seeds N backups (catalog rows, local files, objects in two moto S3 servers),
then, in one run and on the same data, times:

  (a) the DAG's quick run under ``dag.test()``, tasks one after another: cold (first
      run: listings, and HEADs within the probe budget to learn store checksums) and
      warm (the hourly steady state); then cold and warm again as it runs in production,
      under a real scheduler, dag-processor and api-server with LocalExecutor
      (``--parallelism`` task processes at once), each timed from its trigger to its end
      (the object state is forgotten before the cold one);
  (b) the old way: one HEAD (or stat) per object per backend, and one mapped task
      per backup per backend (measured on a sample and scaled linearly, since it
      is far too slow at size);
  (c) ``rclone check --size-only`` local<->r2 and local<->b2, when rclone is installed;

and prints wall time, requests per backend, mapped task instances and peak
memory, with the ratios. ``--hash-mib`` also measures full-mode hashing of a
local file against hashlib's raw SHA-256 speed on this machine.

``--incident`` measures an incident instead: after a steady state (a cold then a
warm quick run), the local volume is emptied (as if unmounted) and two quick runs
find the whole backend missing. For each run it prints the wall time, the largest
XCom of each task (read from Airflow's metadata database), the notices the webhook
received, and the rows each run added to the package's tables.

    PYTHONPATH=. .venv/bin/python -m bench.scale --backups 1000 10000 100000
    PYTHONPATH=. .venv/bin/python -m bench.scale --incident --backups 100000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

DAG_ID = "verify_storage_integrity"
OBJECT_BYTES = 256
FOLDER_TYPES = ("FULL_DATABASE", "TENANT_BACKUP")

#: The seeded catalog holds no WAL archive: lift the freshness limits, whose ``stale``
#: verdict on a type with no backup would fail every run (what is timed is the checking).
NO_FRESHNESS_LIMITS = {"max_age_hours": {"FULL_DATABASE": None, "WAL_ARCHIVE": None}}


def log(message: str) -> None:
    print(message, flush=True)


# ---------------------------------------------------------------- seeding


def seed(n: int, stores: Any, postgres_dsn: str) -> None:
    """N backups spread over the last 29 days, one folder per type and day, on all three backends."""
    import psycopg

    now = datetime.now(UTC)
    rows = []
    objects = []
    for index in range(n):
        backup_id = str(uuid.uuid4())
        backup_type = FOLDER_TYPES[index % len(FOLDER_TYPES)]
        created = now - timedelta(hours=2) - timedelta(seconds=(index * 29 * 86400) // max(n, 1))
        content = index.to_bytes(8, "big") * (OBJECT_BYTES // 8)
        name = f"{backup_type.lower()}_{created:%Y%m%d_%H%M%S}_{backup_id[:8]}.dump"
        key = f"{backup_type.lower()}/{created:%Y/%m/%d}/{name}"
        rows.append(
            (
                backup_id,
                backup_type,
                key.rsplit("/", 1)[1],
                len(content),
                hashlib.sha256(content).hexdigest(),
                key,
                key,
                key,
                "COMPLETED",
                created,
                "{}",
            )
        )
        objects.append((key, content))
    with psycopg.connect(postgres_dsn) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY backups_backup (id, backup_type, filename, size_bytes, checksum, local_path, r2_path, "
            "b2_path, status, created_at, metadata) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row)
    for key, content in objects:
        full = os.path.join(stores.local_root, key)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as handle:
            handle.write(content)

    def put(item: tuple[str, bytes]) -> None:
        key, content = item
        for client, bucket in (stores.s3("r2"), stores.s3("b2")):
            client.put_object(Bucket=bucket, Key=key, Body=content)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, objects))


# ---------------------------------------------------------------- measuring


def dag_run(
    env: dict[str, str], conf: dict[str, Any], service_pids: dict[str, list[int]] | None = None
) -> dict[str, Any]:
    """One DAG run in a fresh process: its statistics, mapped instances, wall time, peak memory and CPU."""
    import resource

    code = (
        "import json, os, sys, time, resource\n"
        "from devtools.runs import DagRunOutcome, load_dag\n"
        "dag = load_dag()\n"
        "t = time.perf_counter()\n"
        "outcome = DagRunOutcome(dag.test(run_conf=json.loads(os.environ['BENCH_CONF'])))\n"
        "wall = time.perf_counter() - t\n"
        "from airflow.models.taskinstance import TaskInstance\n"
        "from airflow.utils.session import create_session\n"
        "with create_session() as s:\n"
        "    mapped = s.query(TaskInstance).filter(TaskInstance.run_id == outcome.run_id,"
        " TaskInstance.task_id == 'verify_chunk').count()\n"
        "    from airflow.models.xcom import XComModel\n"
        "    xcoms = {}\n"
        "    for row in s.query(XComModel).filter(XComModel.run_id == outcome.run_id):\n"
        "        raw = row.value if isinstance(row.value, str) else json.dumps(row.value)\n"
        "        key = row.task_id if row.key == 'return_value' else row.task_id + ':' + row.key\n"
        "        xcoms[key] = max(xcoms.get(key, 0), len(raw.encode()))\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024\n"
        "print('RESULT ' + json.dumps({'state': outcome.state, 'stats': outcome.statistics, 'wall': wall,"
        " 'mapped': mapped, 'peak_mib': peak, 'xcom_bytes': xcoms}))\n"
    )
    meter = CpuMeter(service_pids or {}).start()
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "BENCH_CONF": json.dumps(conf)},
        capture_output=True,
        text=True,
        check=False,
    )
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = usage.ru_utime + usage.ru_stime - reaped.ru_utime - reaped.ru_stime
    cpu = {"dag.test": round(own, 1), **meter.stop()}
    for line in process.stdout.splitlines():
        if line.startswith("RESULT "):
            return {**json.loads(line[7:]), "cpu_seconds": cpu}
    raise RuntimeError(f"DAG run failed: {process.stderr[-3000:]}")


def scheduler_runs(
    metadata: Any,
    settings: dict[str, str],
    confs: list[dict[str, Any]],
    parallelism: int,
    before: Any = None,
    service_pids: dict[str, list[int]] | None = None,
) -> list[dict[str, Any]]:
    """The DAG as it runs in production: scheduler, dag-processor and api-server, LocalExecutor.

    Mapped chunks run side by side here (up to ``parallelism`` task processes),
    where ``dag.test()`` runs them one after another. Unpausing lets the
    scheduler's own hourly run go first; then ``before()`` is called (the bench
    forgets every recorded object state there, so the next run is a first run
    ever) and one run per ``confs`` entry is triggered in turn, each timed from
    its trigger to its end, with the CPU seconds Airflow and each of ``service_pids`` used meanwhile.
    """
    from devtools.deployment import AirflowDeployment

    deployment = AirflowDeployment(
        metadata,
        components=("api-server", "scheduler", "dag-processor"),
        settings={
            **settings,
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__MAX_MAP_LENGTH": "100000",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        },
    )
    results = []
    with deployment:
        deployment.wait_for_dag(DAG_ID)
        deployment.unpause(DAG_ID)
        deployment.wait_for_runs(DAG_ID, count=1, timeout=3600)
        if before is not None:
            before()
        for conf in confs:
            clear_of_the_hour(deployment)
            meter = CpuMeter({"airflow": deployment.pids, **(service_pids or {})}).start()
            started = time.perf_counter()
            run_id = deployment.trigger(DAG_ID, conf)
            [run] = deployment.wait_for_runs(DAG_ID, run_ids=[run_id], timeout=3600, poll=0.2)
            wall = time.perf_counter() - started
            cpu = meter.stop()
            tasks = deployment.query(
                "SELECT task_id, map_index, start_date, end_date FROM task_instance "
                "WHERE run_id = %s ORDER BY start_date",
                [run_id],
            )
            results.append(
                {
                    "state": run["state"],
                    "run_id": run_id,
                    "wall": wall,
                    "mapped": sum(1 for t in tasks if t["task_id"] == "verify_chunk"),
                    "peak_mib": None,
                    "task_seconds": task_seconds(tasks),
                    "overlapped_by": runs_beside(deployment, run_id),
                    "cpu_seconds": cpu,
                }
            )
            if results[-1]["overlapped_by"]:
                log(f"  WARNING: {run_id} ran beside {results[-1]['overlapped_by']}: its time is not its own")
            per_task = ", ".join(
                f"{task_id} {count} {total:.1f} {longest:.1f}"
                for task_id, (count, total, longest) in results[-1]["task_seconds"].items()
            )
            log(f"  scheduler run {run_id}: {wall:.1f} s; per task (instances, sum s, max s): {per_task}")
            log(f"    CPU s: {format_cpu(cpu)}")
    deployment.cleanup()
    return results


#: A measured run that could reach the next full hour within this many seconds starts after it.
HOUR_MARGIN_SECONDS = 600


def clear_of_the_hour(deployment: Any, margin: float = HOUR_MARGIN_SECONDS) -> None:
    """When the next full hour is near, wait until the scheduler's own run of that hour has ended.

    The DAG is hourly: a timed run that spans a full hour shares the machine with the
    scheduler's run of that hour (seen at 100k: a first run of 228 s, against 105 s alone).
    """
    now = datetime.now(UTC)
    to_hour = 3600 - (now.minute * 60 + now.second + now.microsecond / 1e6)
    if to_hour >= margin:
        return
    known = len(deployment.runs(DAG_ID))
    log(f"  waiting {to_hour:.0f} s for the scheduler's own run of the next hour (not timed beside it)")
    time.sleep(to_hour + 5)
    deployment.wait_for_runs(DAG_ID, count=known + 1, timeout=3600)


def runs_beside(deployment: Any, run_id: str) -> list[str]:
    """The other runs of the DAG that were running at some time during ``run_id``."""
    rows = deployment.query(
        "SELECT o.run_id FROM dag_run o JOIN dag_run r ON r.dag_id = o.dag_id AND r.run_id = %s "
        "WHERE o.run_id <> r.run_id AND o.start_date < r.end_date "
        "AND (o.end_date IS NULL OR o.end_date > r.start_date)",
        [run_id],
    )
    return [row["run_id"] for row in rows]


class CpuMeter:
    """CPU seconds that named process trees used between :meth:`start` and :meth:`stop`.

    A tree's figure is every live process's own time plus what it reaped from children
    that have ended (Airflow's task processes, PostgreSQL's backends), so each CPU second
    is counted once. On two cores a run's wall time is bounded below by its CPU over two:
    this says whose CPU it was.
    """

    def __init__(self, roots: dict[str, list[int]]) -> None:
        self.roots = roots
        self.before: dict[str, float] = {}

    @staticmethod
    def _tree_seconds(pids: list[int]) -> float:
        import psutil

        total = 0.0
        for pid in pids:
            try:
                root = psutil.Process(pid)
                processes = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for process in processes:
                try:
                    times = process.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                total += times.user + times.system + times.children_user + times.children_system
        return total

    def start(self) -> CpuMeter:
        self.before = {name: self._tree_seconds(pids) for name, pids in self.roots.items()}
        return self

    def stop(self) -> dict[str, float]:
        after = {name: self._tree_seconds(pids) for name, pids in self.roots.items()}
        return {name: round(after[name] - self.before[name], 1) for name in self.roots}


def format_cpu(cpu: dict[str, float]) -> str:
    shares = ", ".join(f"{name} {seconds:.1f}" for name, seconds in cpu.items())
    return f"{shares}; total {sum(cpu.values()):.1f}"


def postmaster_pid(postgres: Any) -> int:
    with open(os.path.join(postgres.data_dir, "postmaster.pid")) as handle:
        return int(handle.readline())


def task_seconds(tasks: list[dict[str, Any]]) -> dict[str, tuple[int, float, float]]:
    """Per task id: instances, the sum and the longest of their durations (where the run's time went)."""
    seconds: dict[str, list[float]] = {}
    for task in tasks:
        if task["start_date"] and task["end_date"]:
            seconds.setdefault(task["task_id"], []).append(
                (task["end_date"] - task["start_date"]).total_seconds()
            )
    return {task_id: (len(v), sum(v), max(v)) for task_id, v in seconds.items()}


def forget_object_state(catalog_dsn: str) -> None:
    """What a new installation starts from: nothing learned about any object.

    TRUNCATE, not DELETE: a new installation's table is empty, where a DELETE would leave
    300,000 dead rows (and their index entries) for the first run and autovacuum to wade through.
    """
    import psycopg

    with psycopg.connect(catalog_dsn) as conn:
        conn.execute("TRUNCATE backup_integrity_object")
        conn.execute("DELETE FROM backup_integrity_store_capability")


def run_statistics(catalog_dsn: str, run_id: str) -> dict[str, Any]:
    """The statistics a run recorded in ``backup_integrity_run``."""
    import psycopg

    with psycopg.connect(catalog_dsn) as conn:
        row = conn.execute(
            "SELECT statistics FROM backup_integrity_run WHERE run_id = %s", [run_id]
        ).fetchone()
    if row is None:
        raise RuntimeError(f"run {run_id} recorded no statistics")
    return row[0]


def old_way_heads(stores: Any, n_keys: list[str]) -> dict[str, Any]:
    """One HEAD per object on each S3 backend and one stat per local file, 8 in flight."""
    started = time.perf_counter()

    def head_all(backend: str) -> None:
        client, bucket = stores.s3(backend)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda k: client.head_object(Bucket=bucket, Key=k), n_keys))

    head_all("r2")
    head_all("b2")
    for key in n_keys:
        os.stat(os.path.join(stores.local_root, key))
    return {
        "wall": time.perf_counter() - started,
        "requests": {"local": len(n_keys), "r2": len(n_keys), "b2": len(n_keys)},
    }


def rclone_check(
    stores: Any, backend: str, endpoint: str, service_pids: dict[str, list[int]] | None = None
) -> dict[str, Any] | None:
    if not shutil.which("rclone"):
        return None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    name = backend.upper()
    env.update(
        {
            f"RCLONE_CONFIG_{name}_TYPE": "s3",
            f"RCLONE_CONFIG_{name}_PROVIDER": "Other",
            f"RCLONE_CONFIG_{name}_ENDPOINT": endpoint,
            f"RCLONE_CONFIG_{name}_ACCESS_KEY_ID": "testing",
            f"RCLONE_CONFIG_{name}_SECRET_ACCESS_KEY": "testing",
            f"RCLONE_CONFIG_{name}_REGION": "us-east-1",
        }
    )
    _, bucket = stores.s3(backend)
    command = ["rclone", "check", stores.local_root, f"{backend}:{bucket}", "--size-only", "--checkers", "8"]
    meter = CpuMeter(service_pids or {}).start()
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, _, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    cpu = {"rclone": round(usage.ru_utime + usage.ru_stime, 1), **meter.stop()}
    process.wait()
    with tempfile.NamedTemporaryFile("r", suffix=".log") as dump:
        subprocess.run([*command, "--dump", "headers", "--log-file", dump.name], env=env, capture_output=True)
        requests = dump.read().count("HTTP REQUEST")
    return {"wall": wall, "requests": requests, "peak_mib": usage.ru_maxrss // 1024, "cpu_seconds": cpu}


def hashing(mib: int) -> dict[str, float]:
    """Full-mode hashing of a local file through the backend, against raw hashlib on memory."""
    from include.backup_integrity.stores.base import READ_BLOCK_BYTES
    from include.backup_integrity.stores.local import LocalBackend

    block = os.urandom(READ_BLOCK_BYTES)
    total = mib * 1024 * 1024
    digest = hashlib.sha256()
    started = time.perf_counter()
    for _ in range(total // len(block)):
        digest.update(block)
    raw = total / (time.perf_counter() - started) / 1e9
    folder = tempfile.mkdtemp(prefix="bi-bench-hash-")
    try:
        with open(os.path.join(folder, "big.dump"), "wb") as handle:
            for _ in range(total // len(block)):
                handle.write(block)
        backend = LocalBackend(folder)
        backend.read("big.dump", None)  # warm the page cache: we measure hashing, not the disk
        started = time.perf_counter()
        observation = backend.read("big.dump", None)
        ours = (observation.bytes_read or 0) / (time.perf_counter() - started) / 1e9
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"raw_gbps": raw, "backend_gbps": ours, "ratio": ours / raw}


# ---------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backups", type=int, nargs="+", default=[1000], help="N values to run")
    parser.add_argument(
        "--old-way-sample",
        type=int,
        default=100,
        help="backups run as one mapped task per backup per backend (scaled to N)",
    )
    parser.add_argument(
        "--old-way-all",
        action="store_true",
        help="measure the old way at every N (default: the smallest N only; it is slow)",
    )
    parser.add_argument(
        "--parallelism",
        type=int,
        default=6,
        help="LocalExecutor parallelism of the run under the scheduler (0: skip that run)",
    )
    parser.add_argument(
        "--s3-server",
        choices=["moto", "seaweedfs"],
        default="moto",
        help="what serves the two S3 stores: moto servers, or real SeaweedFS servers (weed mini)",
    )
    parser.add_argument(
        "--hash-mib", type=int, default=1024, help="file size for the hashing benchmark (0: skip)"
    )
    parser.add_argument(
        "--incident",
        action="store_true",
        help="measure an incident (the whole local backend missing) at each N instead",
    )
    args = parser.parse_args()

    from devtools.runs import use_throwaway_airflow
    from devtools.seed import Stores, create_buckets, create_catalog
    from devtools.services import MotoServer, PostgresServer, SeaweedServer

    s3_server = SeaweedServer if args.s3_server == "seaweedfs" else MotoServer

    home = tempfile.mkdtemp(prefix="bi-bench-airflow-")
    use_throwaway_airflow(
        home, AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING", AIRFLOW__CORE__MAX_MAP_LENGTH="100000"
    )
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    report: list[dict[str, Any]] = []
    if args.incident:
        try:
            for n in sorted(args.backups):
                report.append(
                    bench_incident(n, Stores, create_buckets, create_catalog, s3_server, PostgresServer)
                )
        finally:
            shutil.rmtree(home, ignore_errors=True)
        log("\nJSON " + json.dumps(report))
        return 0
    try:
        for n in sorted(args.backups):
            sample = args.old_way_sample if args.old_way_all or n == min(args.backups) else 0
            report.append(
                bench_one(
                    n,
                    sample,
                    args.parallelism,
                    Stores,
                    create_buckets,
                    create_catalog,
                    s3_server,
                    PostgresServer,
                )
            )
        if len(report) > 1:
            low, high = report[0], report[-1]
            grown = (high["warm"]["peak_mib"] - low["warm"]["peak_mib"]) * 1024 * 1024
            log(
                f"\nmemory: the DAG run's peak grows by {grown / (high['n'] - low['n']):.0f} bytes per "
                f"catalog row ({low['warm']['peak_mib']} MiB at {low['n']:,}, "
                f"{high['warm']['peak_mib']} MiB at {high['n']:,})"
            )
        if args.hash_mib:
            figures = hashing(args.hash_mib)
            log(
                f"\nfull-mode hashing of a {args.hash_mib} MiB local file: "
                f"{figures['backend_gbps']:.2f} GB/s "
                f"through LocalBackend.read vs {figures['raw_gbps']:.2f} GB/s raw hashlib SHA-256 "
                f"({figures['ratio']:.0%})"
            )
    finally:
        shutil.rmtree(home, ignore_errors=True)
    log("\nJSON " + json.dumps(report))
    return 0


def bench_one(
    n, sample, parallelism, Stores, create_buckets, create_catalog, s3_server, PostgresServer
) -> dict[str, Any]:
    services = []
    local_root = tempfile.mkdtemp(prefix="bi-bench-backups-")
    try:
        postgres = PostgresServer().start()
        services.append(postgres)
        r2, b2 = s3_server("r2").start(), s3_server("b2").start()
        services += [r2, b2]
        stores = Stores(
            catalog_dsn=postgres.create_database("catalog"),
            local_root=local_root,
            r2=r2.client(),
            b2=b2.client(),
        )
        create_catalog(stores)
        create_buckets(stores)
        started = time.perf_counter()
        seed(n, stores, stores.catalog_dsn)
        log(f"\n=== N = {n:,} backups x 3 backends (seeded in {time.perf_counter() - started:.0f}s) ===")
        from devtools.services import store_connections

        settings = {
            **store_connections(postgres, r2, b2, "catalog"),
            "AIRFLOW_VAR_BACKUP_INTEGRITY": json.dumps({"local_root": local_root, **NO_FRESHNESS_LIMITS}),
        }
        env = {**os.environ, **settings}
        service_pids = {
            "s3 servers": [r2.process.pid, b2.process.pid],
            "postgres": [postmaster_pid(postgres)],
        }
        cold = dag_run(env, {"mode": "quick"}, service_pids)
        warm = dag_run(env, {"mode": "quick"}, service_pids)
        for name, run in (("cold", cold), ("warm", warm)):
            assert run["stats"]["checks_passed"] == 3 * n, run["stats"]
            log(f"  dag.test() {name}: {run['wall']:.1f} s; CPU s: {format_cpu(run['cpu_seconds'])}")
        scheduled = scheduled_cold = None
        if parallelism:
            scheduled_cold, scheduled = scheduler_runs(
                postgres,
                settings,
                [{"mode": "quick"}, {"mode": "quick"}],
                parallelism,
                before=lambda: forget_object_state(stores.catalog_dsn),
                service_pids=service_pids,
            )
            for run in (scheduled_cold, scheduled):
                run["stats"] = run_statistics(stores.catalog_dsn, run["run_id"])
                assert run["state"] == "success", run
                assert run["stats"]["checks_passed"] == 3 * n, run["stats"]

        import psycopg

        with psycopg.connect(stores.catalog_dsn) as conn:
            keys = [row[0] for row in conn.execute("SELECT r2_path FROM backups_backup")]
        heads = old_way_heads(stores, keys) if sample else None
        sample_n = min(sample, n)
        mapped_sample = None
        if sample:
            old_env = dict(env)
            old_env["AIRFLOW_VAR_BACKUP_INTEGRITY"] = json.dumps(
                {
                    "local_root": local_root,
                    "chunk_size": 1,
                    "max_chunks_per_backend": 100000,
                    **NO_FRESHNESS_LIMITS,
                }
            )
            mapped_sample = dag_run(old_env, {"mode": "quick", "max_backups": sample_n})
        rclone = {
            b: rclone_check(stores, b, s.endpoint_url, service_pids) for b, s in (("r2", r2), ("b2", b2))
        }
        if all(rclone.values()):
            for b in ("r2", "b2"):
                cpu = format_cpu(rclone[b]["cpu_seconds"])
                log(f"  rclone check local<->{b}: {rclone[b]['wall']:.1f} s; CPU s: {cpu}")

        def requests_of(stats: dict[str, Any]) -> dict[str, int]:
            return {b: sum(c.values()) for b, c in stats["requests"].items()}

        lines = []
        if scheduled and scheduled_cold:
            lines.append(
                (
                    f"DAG quick run, warm, scheduler + LocalExecutor (parallelism {parallelism})",
                    scheduled["wall"],
                    requests_of(scheduled["stats"]),
                    scheduled["mapped"],
                    None,
                )
            )
            lines.append(
                (
                    "DAG quick run, cold (first run ever), scheduler + LocalExecutor",
                    scheduled_cold["wall"],
                    requests_of(scheduled_cold["stats"]),
                    scheduled_cold["mapped"],
                    None,
                )
            )
        lines += [
            (
                "DAG quick run, warm, dag.test() (tasks one after another)",
                warm["wall"],
                requests_of(warm["stats"]),
                warm["mapped"],
                warm["peak_mib"],
            ),
            (
                "DAG quick run, cold (first run ever), dag.test()",
                cold["wall"],
                requests_of(cold["stats"]),
                cold["mapped"],
                cold["peak_mib"],
            ),
        ]
        if heads and mapped_sample:
            lines.append(
                ("old way: 1 HEAD/stat per object per backend", heads["wall"], heads["requests"], 0, None)
            )
            lines.append(
                (
                    f"old way: 1 mapped task per backup per backend (x{n / sample_n:g} of {sample_n})",
                    mapped_sample["wall"] * n / sample_n,
                    {},
                    3 * n,
                    mapped_sample["peak_mib"],
                )
            )
        if all(rclone.values()):
            lines.append(
                (
                    "rclone check --size-only local<->r2 + local<->b2",
                    rclone["r2"]["wall"] + rclone["b2"]["wall"],
                    {"r2": rclone["r2"]["requests"], "b2": rclone["b2"]["requests"]},
                    0,
                    max(rclone["r2"]["peak_mib"], rclone["b2"]["peak_mib"]),
                )
            )
        log(f"{'':72} {'wall s':>8} {'requests (per backend)':>34} {'mapped':>7} {'peak MiB':>9}")
        for label, wall, requests, mapped, peak in lines:
            shown = " ".join(f"{b}={v}" for b, v in requests.items()) or "-"
            log(f"{label:72} {wall:8.2f} {shown:>34} {mapped:7} {peak if peak is not None else '-':>9}")
        s3_requests = sum(v for b, v in requests_of(warm["stats"]).items() if b != "local")
        rclone_wall = 0.0
        if all(rclone.values()):
            rclone_wall = rclone["r2"]["wall"] + rclone["b2"]["wall"]
            rclone_requests = rclone["r2"]["requests"] + rclone["b2"]["requests"]
            if scheduled:
                log(
                    f"ratios: warm quick run under the scheduler / rclone wall = "
                    f"{scheduled['wall'] / rclone_wall:.2f}"
                )
            log(
                f"ratios: warm quick run under dag.test() / rclone wall = {warm['wall'] / rclone_wall:.2f}; "
                f"S3 requests {s3_requests} vs rclone {rclone_requests} "
                f"({s3_requests / max(rclone_requests, 1):.2f})"
            )
        for name, first, then in (("dag.test()", cold, warm), ("scheduler", scheduled_cold, scheduled)):
            if not first or not then:
                continue
            per_object = {b: v / n for b, v in requests_of(first["stats"]).items() if b != "local"}
            versus = f" (rclone {first['wall'] / rclone_wall:.2f}x)" if all(rclone.values()) else ""
            log(
                f"first run under {name}: {first['wall'] / then['wall']:.2f}x the warm run{versus}; "
                "requests per object per S3 store "
                + ", ".join(f"{b} {v:.4f}" for b, v in sorted(per_object.items()))
            )
        log(
            f"ratios: one HEAD per object / warm S3 requests = {2 * n / max(s3_requests, 1):.0f}x; "
            f"one mapped task per check / ours = {3 * n / max(warm['mapped'], 1):.0f}x"
        )
        return {
            "n": n,
            "cold": cold,
            "warm": warm,
            "scheduled": scheduled,
            "scheduled_cold": scheduled_cold,
            "heads": heads,
            "old_tasks_wall": mapped_sample["wall"] * n / sample_n if mapped_sample else None,
            "rclone": rclone,
        }
    finally:
        for service in reversed(services):
            service.stop()
        shutil.rmtree(local_root, ignore_errors=True)


def table_rows(catalog_dsn: str) -> dict[str, int]:
    """Rows of each of the package's tables (every name that starts with ``backup_integrity_``)."""
    import psycopg

    with psycopg.connect(catalog_dsn) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "AND tablename LIKE 'backup\\_integrity\\_%%'"
            )
        ]
        return {name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in sorted(names)}


def bench_incident(n, Stores, create_buckets, create_catalog, s3_server, PostgresServer) -> dict[str, Any]:
    """A steady state, then the whole local backend missing (an empty mount point) for two runs."""
    from devtools.services import WebhookReceiver, apprise_connection, store_connections

    services: list[Any] = []
    local_root = tempfile.mkdtemp(prefix="bi-bench-backups-")
    webhook = WebhookReceiver().start()
    try:
        postgres = PostgresServer().start()
        services.append(postgres)
        r2, b2 = s3_server("r2").start(), s3_server("b2").start()
        services += [r2, b2]
        stores = Stores(
            catalog_dsn=postgres.create_database("catalog"),
            local_root=local_root,
            r2=r2.client(),
            b2=b2.client(),
        )
        create_catalog(stores)
        create_buckets(stores)
        started = time.perf_counter()
        seed(n, stores, stores.catalog_dsn)
        seeded = time.perf_counter() - started
        log(f"\n=== incident at N = {n:,} backups x 3 backends (seeded in {seeded:.0f}s) ===")
        settings = {
            **store_connections(postgres, r2, b2, "catalog"),
            "AIRFLOW_CONN_BACKUP_NOTIFY": json.dumps(apprise_connection(webhook.apprise_url)),
            "AIRFLOW_VAR_BACKUP_INTEGRITY": json.dumps(
                {"local_root": local_root, "repair": "plan", **NO_FRESHNESS_LIMITS}
            ),
        }
        env = {**os.environ, **settings}
        runs: list[tuple[str, dict[str, Any]]] = []
        for label in (
            "cold (first run)",
            "warm (steady state)",
            "incident (local volume empty)",
            "incident, again",
        ):
            if label.startswith("incident") and os.listdir(local_root):
                shutil.rmtree(local_root)
                os.mkdir(local_root)  # an empty mount point: the folder is there, the files are not
            before = table_rows(stores.catalog_dsn)
            webhook.clear()
            run = dag_run(env, {"mode": "quick"})
            after = table_rows(stores.catalog_dsn)
            run["notices"] = len(webhook.messages)
            run["rows_added"] = {
                t: after[t] - before.get(t, 0) for t in after if after[t] != before.get(t, 0)
            }
            runs.append((label, run))
        heading = f"{'run':34} {'state':8} {'wall s':>7} {'notices':>7} {'largest XCom (task: bytes)':>44}"
        log(f"{heading}  rows added")
        for label, run in runs:
            task, size = max(run["xcom_bytes"].items(), key=lambda item: item[1])
            largest = f"{task}: {size:,}"
            log(
                f"{label:34} {run['state']:8} {run['wall']:7.1f} {run['notices']:7} {largest:>44}"
                f"  {sum(run['rows_added'].values()):,} {run['rows_added']}"
            )
        incident = runs[2][1]
        stats = incident["stats"]
        log(
            f"incident run: backend_incidents {stats['backend_incidents']}, "
            f"missing_files {stats['missing_files']:,}, repair_plan {len(stats.get('repair_plan', []))} "
            f"of repair_plan_total {stats.get('repair_plan_total')}; "
            f"XCom bytes per task {incident['xcom_bytes']}"
        )
        return {"n": n, "runs": [{"label": label, **run} for label, run in runs]}
    finally:
        webhook.stop()
        for service in reversed(services):
            service.stop()
        shutil.rmtree(local_root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
