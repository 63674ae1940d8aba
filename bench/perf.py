"""sqlgate against PostgreSQL direct and PgBouncer, on one machine, in one run.

    bench/run [--quick] [--duration S] [--workers N] [--json FILE] [--profile]
    python -m bench ...                       (the same, from the repository root)

Starts a throwaway PostgreSQL, PgBouncer (session pooling) and `sqlgate serve` with token
login and a realistic agent policy (block rules, masks), then measures:

  pgbench   pgbench -S in simple and prepared mode, runs alternating direct / PgBouncer /
            sqlgate, median TPS and the ratios sqlgate/PgBouncer and sqlgate/direct
  stream    a 1M-row SELECT with one masked column read by psql (-o /dev/null)
  connect   connect + SELECT 1 + close per second, and the milliseconds sqlgate adds
  idle      RSS per idle client connection with 1,000 clients held (sqlgate --workers 1,
            and PgBouncer), and whether all of them can still run SELECT 1

Prints a table, writes JSON (bench/results/latest.json by default) and tears everything down,
also on Ctrl-C or failure. Progress goes to stderr. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from bench.harness import (
    SVC_PASSWORD,
    Gateway,
    connect_seconds,
    direct_dsn,
    gateway_config,
    gateway_dsn,
    postgres,
    workdir,
)
from tests.support.pgserver import PgServer

REPO = Path(__file__).resolve().parent.parent
DEFAULT_JSON = REPO / "bench" / "results" / "latest.json"
PHASES = ("pgbench", "stream", "connect", "idle")
SVC_USER = "sqlgate_svc"
PG_SETTINGS = {
    "max_connections": "1200",  # 1,000 idle clients through one proxy, plus headroom
    "shared_buffers": "256MB",  # the scale-10 pgbench database (~160 MB) stays in memory
    "log_connections": "off",
}

# The identity every benchmark client logs in as. The agent policy is the one an operator
# would give an AI agent: destructive, privilege and dangerous-function statements blocked,
# reads/writes/transactions/session commands allowed, PII columns masked. pgbench -S reads
# `abalance` from pgbench_accounts, a table with a masked column, so masking is planned on
# every result even though the column it reads is not masked.
AGENT_GROUP = "agents"
UNMASKED_GROUP = "agents-unmasked"  # same rules, no masks: the stream's fast-path baseline
_RULES = """
      - {action: block, operations: [drop_database, drop_schema, drop_table, drop_view, drop_function, drop_index, drop_other, truncate], reason: destructive commands are not allowed}
      - {action: block, categories: [dcl], reason: privilege changes are not allowed}
      - {action: block, functions: [pg_read_file, pg_read_binary_file, pg_ls_dir, pg_stat_file, "lo_*", "dblink*", "*_to_xml*", ts_stat, set_config, pg_sleep, pg_terminate_backend, pg_cancel_backend, pg_reload_conf], reason: dangerous function}
      - {action: block, operations: [update_without_where, delete_without_where], reason: UPDATE/DELETE need a WHERE}
      - {action: block, categories: [copy_in, copy_out, procedural, admin], reason: not for agents}
      - {action: allow, categories: [read, write, tcl, session]}"""  # noqa: E501
POLICY = f"""
  - name: agents
    when: {{groups: [{AGENT_GROUP}]}}
    rules:{_RULES}
    masks:
      - {{columns: [public.pgbench_accounts.filler], strategy: redact}}
      - {{columns: ["*.ssn"], strategy: redact}}
    default: block
  - name: agents-unmasked
    when: {{groups: [{UNMASKED_GROUP}]}}
    rules:{_RULES}
    default: block
"""
# Appended to the gateway's config. Everything else is sqlgate's default, in particular the
# audit trail and session recording (on, into an SQLite store in the work dir);
# --no-recording switches them off to separate their cost from the proxy's.
GATEWAY_EXTRA = """
server: {shutdown_grace_seconds: 2}
"""
NO_RECORDING = """
recording: {enabled: false}
"""

STREAM_TABLE = "bench_people"
STREAM_QUERY = f"SELECT id, ssn, note FROM {STREAM_TABLE}"


# --------------------------------------------------------------------------- plumbing

_T0 = time.monotonic()


def progress(message: str) -> None:
    elapsed = int(time.monotonic() - _T0)
    print(f"[bench {elapsed // 60:02d}:{elapsed % 60:02d}] {message}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    """A component failed to start or a measurement could not be taken."""


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(cannot read {path}: {exc.strerror})"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return True
        time.sleep(0.05)
    return False


def _stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants, from /proc."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_line = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat_line.rsplit(")", 1)[1].split()[1])
        children[ppid].append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def rss_kb(root: int) -> int:
    """Sum of VmRSS (kB) over the process tree of `root`."""
    total = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def cpu_seconds(root: int | None) -> float:
    """User + system CPU seconds used so far by the process tree of `root`."""
    if root is None:
        return 0.0
    ticks = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
            if pid == root:  # children that already exited (PostgreSQL backends)
                ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """How much CPU the rest of the machine used while we measured.

    Everything in a run shares the same cores, so another busy process skews it. This
    takes the machine's busy time from /proc/stat and subtracts what the benchmark's own
    processes used (this process and its finished children such as pgbench and psql, and the
    trees of PostgreSQL, PgBouncer and sqlgate).
    """

    def __init__(self) -> None:
        self.roots: dict[str, int] = {}

    @staticmethod
    def _machine_busy() -> float:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = values[3] + values[4]  # idle, iowait
        return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    def _ours(self) -> float:
        import resource

        total = sum(cpu_seconds(pid) for pid in self.roots.values())
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(who)
            total += usage.ru_utime + usage.ru_stime
        return total

    def snapshot(self) -> tuple[float, float, float]:
        return time.monotonic(), self._machine_busy(), self._ours()

    def other_share(self, before: tuple[float, float, float]) -> float:
        """Share of the machine's CPU capacity used by other processes since `before`."""
        now = self.snapshot()
        capacity = (now[0] - before[0]) * (os.cpu_count() or 1)
        other = (now[1] - before[1]) - (now[2] - before[2])
        return max(0.0, other / capacity) if capacity > 0 else 0.0


METER = CpuMeter()
SOURCES_RUN: set[str] = set()  # digests of the sqlgate source at each start of sqlgate


def wait_until_quiet(limit_s: float, share: float = 0.10, window_s: float = 5.0) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        before = METER.snapshot()
        time.sleep(window_s)
        used = METER.other_share(before)
        if used < share:
            progress(f"machine quiet: other processes use {used:.0%} of the CPU")
            return
        if time.monotonic() > deadline:
            progress(f"WARNING: machine still busy ({used:.0%} CPU used by others); going on")
            return
        progress(f"waiting for a quiet machine: other processes use {used:.0%} of the CPU")


def source_fingerprint() -> dict[str, str]:
    """Which sqlgate was measured: the checked-out commit (read from .git, without running
    git) and a digest of the source tree, since the working tree may differ from it."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((REPO / "src" / "sqlgate").rglob("*.py")):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    commit = "unknown"
    with contextlib.suppress(OSError, IndexError):
        head = (REPO / ".git" / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = head[5:]
            ref_file = REPO / ".git" / ref
            if ref_file.exists():
                commit = ref_file.read_text().strip()
            else:
                packed = (REPO / ".git" / "packed-refs").read_text().splitlines()
                commit = next(line.split()[0] for line in packed if line.endswith(" " + ref))
        else:
            commit = head
    return {"commit": commit, "src_sha256": digest.hexdigest()[:16]}


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
        return (out.stdout or out.stderr).splitlines()[0].strip()
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unknown"


# --------------------------------------------------------------------------- components


@dataclass
class Endpoint:
    """Where a client connects: one of direct, pgbouncer, sqlgate."""

    name: str
    port: int
    user: str
    password: str
    pid: int | None = None  # the proxy's process (tree), for its CPU time

    @property
    def dsn(self) -> str:
        return (
            f"host=127.0.0.1 port={self.port} dbname=app user={self.user} "
            f"password={self.password} sslmode=disable"
        )


@dataclass
class Bouncer:
    port: int
    process: subprocess.Popen[bytes]
    directory: Path


@contextlib.contextmanager
def pgbouncer(pg: PgServer, work: Path, max_clients: int) -> Iterator[Bouncer]:
    """PgBouncer in session pooling mode, run in the foreground as the unprivileged `postgres`
    user when we are root (it refuses to run as root); SCRAM from a plain-text auth_file."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    directory = work / "pgbouncer"
    directory.mkdir(mode=0o700)
    port = _free_port()
    (directory / "userlist.txt").write_text(f'"{SVC_USER}" "{SVC_PASSWORD}"\n')
    (directory / "pgbouncer.ini").write_text(f"""\
[databases]
app = host=127.0.0.1 port={pg.port} dbname=app

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {directory / "userlist.txt"}
pool_mode = session
max_client_conn = {max_clients + 100}
default_pool_size = {max_clients + 50}
max_db_connections = 0
server_reset_query = DISCARD ALL
ignore_startup_parameters = extra_float_digits,options
logfile = {directory / "pgbouncer.log"}
pidfile = {directory / "pgbouncer.pid"}
log_connections = 0
log_disconnections = 0
""")
    kwargs: dict[str, Any] = {}
    if os.geteuid() == 0:
        import pwd

        account = pwd.getpwnam(os.environ.get("SQLGATE_PG_USER", "postgres"))
        for path in [directory, *directory.iterdir()]:
            os.chown(path, account.pw_uid, account.pw_gid)
        # The work dir is 0700 root; the postgres user only needs to traverse it.
        work.chmod(0o711)
        kwargs = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    stderr_path = directory / "stderr.log"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [binary, str(directory / "pgbouncer.ini")],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            start_new_session=True,
            **kwargs,
        )
    try:
        if not _wait_port(port, proc, 15):
            raise BenchError(
                f"pgbouncer did not start (exit code {proc.poll()}).\n--- its stderr ---\n"
                f"{_tail(stderr_path)}\n--- its log ---\n{_tail(directory / 'pgbouncer.log')}"
            )
        yield Bouncer(port, proc, directory)
    finally:
        _stop_process(proc)


def _launch_sqlgate(pg: PgServer, work: Path, workers: int, name: str, extra_yaml: str) -> Gateway:
    """Start `sqlgate serve` and wait until every worker is up; its output goes to a log."""
    config = work / f"{name}.yaml"
    text = gateway_config(pg, work, POLICY, GATEWAY_EXTRA + extra_yaml)
    config.write_text(text)
    port = int(text.split("postgres: 127.0.0.1:")[1].split()[0])
    admin = int(text.split("admin: 127.0.0.1:")[1].split()[0])
    env = {**os.environ, "SQLGATE_BENCH_SVC_PASSWORD": SVC_PASSWORD}
    log_path = work / f"{name}.log"
    cmd = [sys.executable, "-m", "sqlgate.cli", "serve", "--workers", str(workers),
           "--config", str(config)]  # fmt: skip
    with log_path.open("ab") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=work, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=log, start_new_session=True)  # fmt: skip
    gateway = Gateway(port, admin, config, proc)
    SOURCES_RUN.add(source_fingerprint()["src_sha256"])
    deadline = time.monotonic() + 30
    try:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{admin}/readyz", timeout=1).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"sqlgate did not start (exit code {proc.poll()})")
            time.sleep(0.1)
        # /readyz answers from worker 0 only: wait for the other workers, then make sure
        # none of them failed at start (the supervisor then stops them all).
        while len(process_tree(proc.pid)) < (1 if workers == 1 else workers + 1):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"sqlgate workers did not start (exit code {proc.poll()})")
            time.sleep(0.1)
        time.sleep(1.0)
        if proc.poll() is not None or len(process_tree(proc.pid)) < (workers + (workers > 1)):
            raise BenchError(f"a sqlgate worker failed at start (exit code {proc.poll()})")
    except BaseException:
        _stop_sqlgate(gateway)
        raise
    return gateway


def _stop_sqlgate(gateway: Gateway) -> None:
    _stop_process(gateway.process, 15)
    # sqlgate leaves its per-worker cancel sockets behind (/tmp/sqlgate-cancel-<pid>-N.sock).
    for path in Path(tempfile.gettempdir()).glob(f"sqlgate-cancel-{gateway.process.pid}-*"):
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def sqlgate(
    pg: PgServer, work: Path, workers: int, name: str, extra_yaml: str, warnings: list[str]
) -> Iterator[Gateway]:
    """`sqlgate serve` as a subprocess, its output in <work>/<name>.log. A failed start is
    retried once (and reported), so one flaky start does not void a long run."""
    log_path = work / f"{name}.log"
    try:
        gateway = _launch_sqlgate(pg, work, workers, name, extra_yaml)
    except BenchError as exc:
        tail = _tail(log_path, 4)
        warnings.append(f"{name}: {exc}; retried once. Log tail: {tail}")
        progress(f"WARNING: {exc}; retrying once. Log tail:\n{tail}")
        try:
            gateway = _launch_sqlgate(pg, work, workers, name, extra_yaml)
        except BenchError as again:
            raise BenchError(f"{again}:\n{_tail(log_path)}") from None
    try:
        yield gateway
    finally:
        _stop_sqlgate(gateway)


# --------------------------------------------------------------------------- data set-up


def prepare_data(pg: PgServer, scale: int, rows: int) -> None:
    env = {**os.environ, "PGPASSWORD": SVC_PASSWORD, "PGSSLMODE": "disable"}
    progress(f"pgbench -i -s {scale} ...")
    proc = subprocess.run(
        [
            "pgbench",
            "-i",
            "-q",
            "-s",
            str(scale),
            "-h",
            "127.0.0.1",
            "-p",
            str(pg.port),
            "-U",
            SVC_USER,
            "app",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchError(f"pgbench -i failed:\n{proc.stderr}")
    progress(f"creating {STREAM_TABLE} ({rows:,} rows) ...")
    with psycopg.connect(direct_dsn(pg), autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {STREAM_TABLE} AS SELECT g AS id, "
            "format('%s-%s-%s', 100 + g % 800, 10 + g % 90, 1000 + g % 9000) AS ssn, "
            f"'order note number ' || g AS note FROM generate_series(1, {rows}) g"
        )
        conn.execute("VACUUM ANALYZE")


def check_enforcement(gw_endpoint: Endpoint) -> dict[str, Any]:
    """Prove the policy is really on: blocks answer 42501, masked columns come back masked."""
    checks: dict[str, Any] = {}
    with psycopg.connect(gw_endpoint.dsn, autocommit=True) as conn:
        for label, sql in (
            ("drop_blocked", "DROP TABLE pgbench_history"),
            ("truncate_blocked", "TRUNCATE pgbench_history"),
            ("grant_blocked", "GRANT SELECT ON pgbench_accounts TO PUBLIC"),
            ("function_blocked", "SELECT pg_sleep(0)"),
        ):
            try:
                conn.execute(sql)
                checks[label] = False
            except psycopg.Error as exc:
                checks[label] = exc.sqlstate == "42501"
        row = conn.execute("SELECT filler FROM pgbench_accounts WHERE aid = 1").fetchone()
        checks["filler_masked"] = row is not None and row[0] == "****"
        row = conn.execute(f"SELECT ssn FROM {STREAM_TABLE} WHERE id = 1").fetchone()
        checks["ssn_masked"] = row is not None and row[0] == "****"
        row = conn.execute("SELECT abalance FROM pgbench_accounts WHERE aid = 1").fetchone()
        checks["unmasked_column_passes"] = row is not None and row[0] == 0
    return checks


# --------------------------------------------------------------------------- pgbench


@dataclass
class PgbenchRun:
    tps: float
    processed: int
    failed: int
    ok: bool
    detail: str = ""
    proxy_cpu_s: float = 0.0
    other_cpu_share: float = 0.0
    seconds: float = 0.0  # wall time: an aborted run ends early


_TPS = re.compile(r"^tps = ([\d.]+) \(without initial connection time\)", re.M)
_PROCESSED = re.compile(r"number of transactions actually processed: (\d+)")
_FAILED = re.compile(r"number of failed transactions: (\d+)")


def pgbench(
    endpoint: Endpoint, mode: str, duration: float, clients: int, threads: int
) -> PgbenchRun:
    env = {**os.environ, "PGPASSWORD": endpoint.password, "PGSSLMODE": "disable"}
    cmd = [
        "pgbench",
        "-n",
        "-S",
        "-M",
        mode,
        "-c",
        str(clients),
        "-j",
        str(threads),
        "-T",
        str(max(1, round(duration))),
        "-h",
        "127.0.0.1",
        "-p",
        str(endpoint.port),
        "-U",
        endpoint.user,
        "app",
    ]
    cpu_before, machine_before = cpu_seconds(endpoint.pid), METER.snapshot()
    started = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, check=False, timeout=duration + 120
        )
    except subprocess.TimeoutExpired:
        return PgbenchRun(0.0, 0, -1, False, f"pgbench hung: killed after {duration + 120:.0f} s")
    wall = time.monotonic() - started
    cpu = cpu_seconds(endpoint.pid) - cpu_before
    other = METER.other_share(machine_before)
    out = proc.stdout + proc.stderr
    tps, processed, failed = _TPS.search(out), _PROCESSED.search(out), _FAILED.search(out)
    run = PgbenchRun(
        tps=float(tps.group(1)) if tps else 0.0,
        processed=int(processed.group(1)) if processed else 0,
        failed=int(failed.group(1)) if failed else -1,
        ok=False,
        proxy_cpu_s=cpu,
        other_cpu_share=other,
        seconds=wall,
    )
    run.ok = (
        proc.returncode == 0
        and tps is not None
        and run.failed == 0
        and run.processed > 0
        and "aborted" not in out
    )
    if not run.ok:
        lines = out.strip().splitlines()
        errors = [line for line in lines if "error" in line.lower()]
        aborted = sum("aborted in command" in line for line in lines)
        run.detail = (
            f"exit {proc.returncode}, {aborted} of {clients} clients aborted, failed "
            f"transactions {run.failed}; first error: {(errors or lines or ['-'])[0]}"
        )
    return run


def phase_pgbench(endpoints: list[Endpoint], opts: Options, results: Results) -> None:
    clients, threads = 8, 2
    progress("pgbench warm-up (not measured)")
    for mode in ("simple", "prepared"):
        for ep in endpoints:
            pgbench(ep, mode, opts.warmup, clients, threads)
    runs: dict[str, dict[str, list[PgbenchRun]]] = {
        m: {ep.name: [] for ep in endpoints} for m in ("simple", "prepared")
    }
    for rnd in range(1, opts.rounds + 1):
        for mode in ("simple", "prepared"):
            for ep in endpoints:
                run = pgbench(ep, mode, opts.duration, clients, threads)
                runs[mode][ep.name].append(run)
                flag = "" if run.ok else f"  FAILED after {run.seconds:.0f} s: {run.detail}"
                progress(
                    f"pgbench -S -M {mode:<8} round {rnd}/{opts.rounds} {ep.name:<9} "
                    f"{run.tps:>9.0f} tps  (other processes: {run.other_cpu_share:.0%} CPU){flag}"
                )
                if not run.ok:
                    results.errors.append(f"pgbench {mode} {ep.name}: {run.detail}")
    out: dict[str, Any] = {
        "clients": clients,
        "threads": threads,
        "duration_s": opts.duration,
        "rounds": opts.rounds,
    }
    for mode, per in runs.items():
        entry: dict[str, Any] = {}
        for name, rs in per.items():
            entry[name] = {
                "tps": [round(r.tps, 1) for r in rs],
                "median_tps": round(statistics.median(r.tps for r in rs), 1),
                "failed_transactions": sum(max(r.failed, 0) for r in rs),
                "all_ok": all(r.ok for r in rs),
                "other_cpu_share": [round(r.other_cpu_share, 3) for r in rs],
                "seconds": [round(r.seconds, 1) for r in rs],
            }
            if any(r.proxy_cpu_s for r in rs):  # the proxy's CPU per transaction
                entry[name]["proxy_cpu_us_per_tx"] = round(
                    statistics.median(r.proxy_cpu_s / max(r.processed, 1) * 1e6 for r in rs), 1
                )
                entry[name]["proxy_cpu_cores"] = round(
                    statistics.median(r.proxy_cpu_s / max(r.seconds, 0.1) for r in rs), 2
                )
        entry["ratio_sqlgate_pgbouncer"] = _ratio(
            entry["sqlgate"]["median_tps"], entry["pgbouncer"]["median_tps"]
        )
        entry["ratio_sqlgate_direct"] = _ratio(
            entry["sqlgate"]["median_tps"], entry["direct"]["median_tps"]
        )
        # Runs of one round are adjacent in time, so their ratio is less exposed to drift.
        entry["ratio_sqlgate_pgbouncer_per_round"] = [
            _ratio(g.tps, b.tps) for g, b in zip(per["sqlgate"], per["pgbouncer"], strict=True)
        ]
        out[mode] = entry
    shares = [r.other_cpu_share for per in runs.values() for rs in per.values() for r in rs]
    out["other_cpu_share_median"] = round(statistics.median(shares), 3)
    out["other_cpu_share_max"] = round(max(shares), 3)
    results.data["pgbench"] = out


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else 0.0


# --------------------------------------------------------------------------- stream


def psql_seconds(endpoint: Endpoint, query: str) -> float:
    env = {**os.environ, "PGPASSWORD": endpoint.password, "PGSSLMODE": "disable"}
    start = time.perf_counter()
    proc = subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(endpoint.port),
            "-U",
            endpoint.user,
            "-d",
            "app",
            "-X",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-o",
            "/dev/null",
            "-c",
            query,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise BenchError(f"psql through {endpoint.name} failed: {proc.stderr.strip()}")
    return elapsed


def phase_stream(endpoints: list[Endpoint], opts: Options, results: Results) -> None:
    progress(f"stream warm-up: {STREAM_QUERY}")
    for ep in endpoints:
        psql_seconds(ep, STREAM_QUERY)
    times: dict[str, list[float]] = {ep.name: [] for ep in endpoints}
    cpu: dict[str, list[float]] = {ep.name: [] for ep in endpoints}
    shares: list[float] = []
    for rnd in range(1, opts.stream_rounds + 1):
        for ep in endpoints:
            cpu_before, machine_before = cpu_seconds(ep.pid), METER.snapshot()
            seconds = psql_seconds(ep, STREAM_QUERY)
            cpu[ep.name].append(cpu_seconds(ep.pid) - cpu_before)
            shares.append(METER.other_share(machine_before))
            times[ep.name].append(seconds)
            progress(
                f"stream round {rnd}/{opts.stream_rounds} {ep.name:<16} {seconds:6.2f} s "
                f"({opts.rows / seconds:,.0f} rows/s)"
            )
    direct = statistics.median(times["direct"])
    out: dict[str, Any] = {
        "rows": opts.rows,
        "query": STREAM_QUERY,
        "masked_column": f"public.{STREAM_TABLE}.ssn (*.ssn, redact)",
    }
    for name, ts in times.items():
        med = statistics.median(ts)
        out[name] = {
            "seconds": [round(t, 3) for t in ts],
            "median_s": round(med, 3),
            "rows_per_s": int(opts.rows / med),
            "ratio_to_direct": _ratio(direct, med),
        }
        if any(cpu[name]):
            out[name]["proxy_cpu_s"] = round(statistics.median(cpu[name]), 3)
    out["other_cpu_share_median"] = round(statistics.median(shares), 3)
    results.data["stream"] = out


# --------------------------------------------------------------------------- connect


def phase_connect(endpoints: list[Endpoint], opts: Options, results: Results) -> None:
    progress(
        f"connect warm-up; then {opts.connect_n} sequential connect+SELECT 1+close "
        f"per target per round"
    )
    for ep in endpoints:
        connect_seconds(ep.dsn, 10)
    times: dict[str, list[float]] = {ep.name: [] for ep in endpoints}
    cpu: dict[str, list[float]] = {ep.name: [] for ep in endpoints}
    shares: list[float] = []
    for rnd in range(1, opts.rounds + 1):
        for ep in endpoints:
            cpu_before, machine_before = cpu_seconds(ep.pid), METER.snapshot()
            seconds = connect_seconds(ep.dsn, opts.connect_n)
            cpu[ep.name].append((cpu_seconds(ep.pid) - cpu_before) / opts.connect_n)
            shares.append(METER.other_share(machine_before))
            times[ep.name].append(seconds)
            progress(
                f"connect round {rnd}/{opts.rounds} {ep.name:<9} {seconds * 1000:6.2f} ms "
                f"({1 / seconds:,.0f} conn/s)  (other processes: {shares[-1]:.0%} CPU)"
            )
    out: dict[str, Any] = {
        "connections_per_round": opts.connect_n,
        "rounds": opts.rounds,
        "client": "psycopg 3, sequential, one thread",
    }
    med = {name: statistics.median(ts) for name, ts in times.items()}
    for name, ts in times.items():
        out[name] = {
            "ms": [round(t * 1000, 3) for t in ts],
            "median_ms": round(med[name] * 1000, 3),
            "per_s": round(1 / med[name], 1),
        }
        if any(cpu[name]):
            out[name]["proxy_cpu_ms_per_connection"] = round(statistics.median(cpu[name]) * 1000, 3)
    out["other_cpu_share_median"] = round(statistics.median(shares), 3)
    out["added_ms_vs_direct"] = round((med["sqlgate"] - med["direct"]) * 1000, 3)
    out["added_ms_vs_pgbouncer"] = round((med["sqlgate"] - med["pgbouncer"]) * 1000, 3)
    out["ratio_sqlgate_direct"] = _ratio(med["direct"], med["sqlgate"])  # in connections/s
    out["ratio_sqlgate_pgbouncer"] = _ratio(med["pgbouncer"], med["sqlgate"])
    results.data["connect"] = out


# --------------------------------------------------------------------------- idle memory


async def _hold_idle(dsn: str, n: int, pid: int, settle: float) -> dict[str, Any]:
    """Open `n` connections (each runs SELECT 1 once, then idles), measure RSS, check them."""
    for _ in range(5):  # warm up the login path, so the baseline is not a cold process
        conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        await conn.execute("SELECT 1")
        await conn.close()
    await asyncio.sleep(settle)
    before = rss_kb(pid)
    conns: list[psycopg.AsyncConnection[Any]] = []
    open_errors: list[str] = []
    gate = asyncio.Semaphore(16)

    async def open_one() -> None:
        async with gate:
            try:
                conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
                conns.append(conn)
                await conn.execute("SELECT 1")
            except psycopg.Error as exc:
                open_errors.append(str(exc).strip())

    started = time.perf_counter()
    try:
        await asyncio.gather(*(open_one() for _ in range(n)))
        open_s = time.perf_counter() - started
        await asyncio.sleep(settle)
        after = rss_kb(pid)
        await asyncio.sleep(settle)
        after2 = rss_kb(pid)

        async def check(conn: psycopg.AsyncConnection[Any]) -> bool:
            async with gate:
                try:
                    cur = await conn.execute("SELECT 1")
                    return (await cur.fetchone()) == (1,)
                except psycopg.Error:
                    return False

        alive = sum(await asyncio.gather(*(check(c) for c in conns)))
    finally:
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
    return {
        "connections": n,
        "opened": len(conns),
        "still_answering_select_1": alive,
        "open_errors": sorted(set(open_errors))[:5],
        "open_seconds": round(open_s, 2),
        "rss_before_kb": before,
        "rss_after_kb": max(after, after2),
        "kb_per_connection": round((max(after, after2) - before) / n, 1),
    }


def phase_idle(pg: PgServer, bouncer: Bouncer, work: Path, opts: Options, results: Results) -> None:
    out: dict[str, Any] = {}
    progress(f"idle: sqlgate --workers 1, {opts.idle_n} clients")
    with sqlgate(pg, work, 1, "sqlgate-idle", opts.gateway_yaml, results.warnings) as gw:
        token = gw.token("bench-agent", AGENT_GROUP)
        out["sqlgate"] = asyncio.run(
            _hold_idle(gateway_dsn(gw, token), opts.idle_n, gw.process.pid, opts.settle)
        )
        out["sqlgate"]["processes"] = len(process_tree(gw.process.pid))
    progress(
        f"idle sqlgate: {out['sqlgate']['kb_per_connection']} KB/connection, "
        f"{out['sqlgate']['still_answering_select_1']}/{opts.idle_n} answered SELECT 1"
    )
    progress(f"idle: PgBouncer, {opts.idle_n} clients")
    ep = Endpoint("pgbouncer", bouncer.port, SVC_USER, SVC_PASSWORD)
    out["pgbouncer"] = asyncio.run(
        _hold_idle(ep.dsn, opts.idle_n, bouncer.process.pid, opts.settle)
    )
    progress(
        f"idle PgBouncer: {out['pgbouncer']['kb_per_connection']} KB/connection, "
        f"{out['pgbouncer']['still_answering_select_1']}/{opts.idle_n} answered SELECT 1"
    )
    for name in ("sqlgate", "pgbouncer"):
        if out[name]["still_answering_select_1"] != opts.idle_n:
            results.errors.append(
                f"idle {name}: only {out[name]['still_answering_select_1']} of {opts.idle_n} "
                f"connections answered SELECT 1 ({out[name]['open_errors']})"
            )
    results.data["idle"] = out


# --------------------------------------------------------------------------- profile


def phase_profile(gw: Gateway, endpoint: Endpoint, opts: Options, results: Results) -> None:
    """py-spy on the sqlgate processes during one extra simple-mode pgbench run."""
    pyspy = shutil.which("py-spy")
    if pyspy is None:
        results.errors.append("--profile: py-spy is not installed")
        return
    raw = opts.json_path.with_name(opts.json_path.stem + "-profile-simple.txt")
    raw.parent.mkdir(parents=True, exist_ok=True)
    duration = max(3, round(opts.duration))
    progress(f"profile: py-spy record on sqlgate during pgbench -S -M simple ({duration}s)")
    spy = subprocess.Popen(
        [
            pyspy,
            "record",
            "--pid",
            str(gw.process.pid),
            "--subprocesses",
            "--format",
            "raw",
            "--output",
            str(raw),
            "--rate",
            "100",
            # Only threads holding the GIL: py-spy cannot tell that uvloop's C loop or an
            # executor thread is idle, so without this half the samples are waiting.
            "--gil",
            "--duration",
            str(duration + 2),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.5)
    run = pgbench(endpoint, "simple", duration, 8, 2)
    _, err = spy.communicate(timeout=duration + 60)
    if spy.returncode != 0 or not raw.exists():
        results.errors.append(f"py-spy failed: {err.decode(errors='replace').strip()[-500:]}")
        return
    self_t, total_t, samples = summarize_collapsed(raw.read_text())
    top = 20

    def rows(counter: collections.Counter[str]) -> list[dict[str, Any]]:
        return [
            {"function": f, "percent": round(100 * c / samples, 1)}
            for f, c in counter.most_common(top)
        ]

    results.data["profile"] = {
        "tps_while_profiled": round(run.tps, 1),
        "samples": samples,
        "collapsed_stacks": str(raw),
        "top_self": rows(self_t),
        # Inclusive time of sqlgate's own functions, without the entry points every sample has.
        "top_total": rows(
            collections.Counter(
                {
                    f: c
                    for f, c in total_t.items()
                    if "(sqlgate/" in f
                    and not any(m in f for m in ("sqlgate/cli.py", "sqlgate/supervisor.py"))
                }
            )
        ),
    }


def _frame(text: str) -> str:
    """`func (path/to/file.py:12)` -> `func (file.py)`, grouped by function."""
    m = re.match(r"^(.*?) \((.*?)(?::\d+)?\)$", text.strip())
    if not m:
        return text.strip()
    func, path = m.groups()
    for marker in ("site-packages/", "src/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{func} ({path})"


def summarize_collapsed(
    text: str,
) -> tuple[collections.Counter[str], collections.Counter[str], int]:
    self_t: collections.Counter[str] = collections.Counter()
    total_t: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        samples += count
        self_t[frames[-1]] += count
        for f in set(frames):
            total_t[f] += count
    return self_t, total_t, max(samples, 1)


# --------------------------------------------------------------------------- report


@dataclass
class Options:
    quick: bool
    duration: float
    warmup: float
    rounds: int
    stream_rounds: int
    workers: int
    rows: int
    scale: int
    connect_n: int
    idle_n: int
    settle: float
    json_path: Path
    phases: tuple[str, ...]
    profile: bool
    gateway_yaml: str
    recording: bool
    wait_quiet_s: float


@dataclass
class Results:
    data: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def _mark(ok: bool) -> str:
    return "yes" if ok else "**no**"


def report_rows(data: dict[str, Any]) -> list[list[str]]:
    """Cells: measurement, direct, PgBouncer, sqlgate, the two ratios, target, met."""
    rows: list[list[str]] = []
    pgb = data.get("pgbench")
    if pgb:
        for mode in ("simple", "prepared"):
            e = pgb[mode]
            r = e["ratio_sqlgate_pgbouncer"]
            rows.append(
                [
                    f"pgbench -S -M {mode} (TPS, median)",
                    _fmt(e["direct"]["median_tps"]),
                    _fmt(e["pgbouncer"]["median_tps"]),
                    _fmt(e["sqlgate"]["median_tps"]),
                    f"{r:.2f}x",
                    f"{e['ratio_sqlgate_direct']:.2f}x",
                    "≥ 0.90x PgBouncer",
                    _mark(r >= 0.9 and e["sqlgate"]["all_ok"])
                    + ("" if e["sqlgate"]["all_ok"] else " (runs aborted)"),
                ]
            )
        for mode in ("simple", "prepared"):
            e = pgb[mode]
            b = e["pgbouncer"].get("proxy_cpu_us_per_tx")
            g = e["sqlgate"].get("proxy_cpu_us_per_tx")
            if b is None or g is None:
                continue
            rows.append(
                [
                    f"... proxy CPU per transaction, {mode} (µs)",
                    "-",
                    _fmt(b, ".1f"),
                    _fmt(g, ".1f"),
                    f"{_ratio(g, b):.1f}x",
                    "-",
                    "(information)",
                    "",
                ]
            )
    st = data.get("stream")
    if st:
        r = st["sqlgate"]["ratio_to_direct"]
        rows.append(
            [
                f"{st['rows']:,}-row stream, 1 masked column (rows/s)",
                _fmt(st["direct"]["rows_per_s"]),
                _fmt(st["pgbouncer"]["rows_per_s"]),
                _fmt(st["sqlgate"]["rows_per_s"]),
                f"{_ratio(st['pgbouncer']['median_s'], st['sqlgate']['median_s']):.2f}x",
                f"{r:.2f}x",
                "≥ 0.50x direct",
                _mark(r >= 0.5),
            ]
        )
        b_cpu, g_cpu = st["pgbouncer"].get("proxy_cpu_s"), st["sqlgate"].get("proxy_cpu_s")
        if b_cpu is not None and g_cpu is not None:
            rows.append(
                [
                    "... proxy CPU for the masked stream (s)",
                    "-",
                    _fmt(b_cpu, ".2f"),
                    _fmt(g_cpu, ".2f"),
                    f"{_ratio(g_cpu, b_cpu):.1f}x",
                    "-",
                    "(information)",
                    "",
                ]
            )
        u = st["sqlgate-unmasked"]
        rows.append(
            [
                f"{st['rows']:,}-row stream, same query, policy without masks (rows/s)",
                _fmt(st["direct"]["rows_per_s"]),
                _fmt(st["pgbouncer"]["rows_per_s"]),
                _fmt(u["rows_per_s"]),
                f"{_ratio(st['pgbouncer']['median_s'], u['median_s']):.2f}x",
                f"{u['ratio_to_direct']:.2f}x",
                "(information)",
                "",
            ]
        )
    cn = data.get("connect")
    if cn:
        rows.append(
            [
                "connect + SELECT 1 + close (per second)",
                _fmt(cn["direct"]["per_s"]),
                _fmt(cn["pgbouncer"]["per_s"]),
                _fmt(cn["sqlgate"]["per_s"]),
                f"{cn['ratio_sqlgate_pgbouncer']:.2f}x",
                f"{cn['ratio_sqlgate_direct']:.2f}x",
                "(information)",
                "",
            ]
        )
        rows.append(
            [
                "... time per connection (ms)",
                _fmt(cn["direct"]["median_ms"], ".2f"),
                _fmt(cn["pgbouncer"]["median_ms"], ".2f"),
                _fmt(cn["sqlgate"]["median_ms"], ".2f"),
                f"{cn['added_ms_vs_pgbouncer']:+.2f} ms",
                f"{cn['added_ms_vs_direct']:+.2f} ms",
                "(information)",
                "",
            ]
        )
        b_ms = cn["pgbouncer"].get("proxy_cpu_ms_per_connection")
        g_ms = cn["sqlgate"].get("proxy_cpu_ms_per_connection")
        if b_ms is not None and g_ms is not None:
            rows.append(
                [
                    "... proxy CPU per connection (ms)",
                    "-",
                    _fmt(b_ms, ".2f"),
                    _fmt(g_ms, ".2f"),
                    f"{_ratio(g_ms, b_ms):.1f}x",
                    "-",
                    "(information)",
                    "",
                ]
            )
    idle = data.get("idle")
    if idle:
        g, b = idle["sqlgate"], idle["pgbouncer"]
        rows.append(
            [
                f"memory per idle client connection (KB RSS, {g['connections']:,} held)",
                "-",
                _fmt(b["kb_per_connection"], ".1f"),
                _fmt(g["kb_per_connection"], ".1f"),
                f"{_ratio(g['kb_per_connection'], b['kb_per_connection']):.1f}x",
                "-",
                "< 50 KB",
                _mark(g["kb_per_connection"] < 50),
            ]
        )
        held = g["still_answering_select_1"]
        rows.append(
            [
                "idle clients still answering SELECT 1 at the end",
                "-",
                f"{b['still_answering_select_1']:,}/{b['connections']:,}",
                f"{held:,}/{g['connections']:,}",
                "",
                "",
                "1,000 held",
                _mark(held == g["connections"])
                + ("" if g["connections"] >= 1000 else f" (only {g['connections']} tried)"),
            ]
        )
    return rows


def markdown_table(data: dict[str, Any]) -> str:
    head = [
        "measurement",
        "direct",
        "PgBouncer",
        "sqlgate",
        "sqlgate/PgBouncer",
        "sqlgate/direct",
        "target",
        "met",
    ]
    rows = report_rows(data)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), sep, *(line(r) for r in rows)])


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="bench/run",
        description="sqlgate vs PostgreSQL direct vs PgBouncer; see docs/performance.md",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short smoke run (3 s pgbench runs, 100k rows, 100 idle clients)",
    )
    parser.add_argument("--duration", type=float, help="seconds per pgbench run (default 20)")
    parser.add_argument("--rounds", type=int, help="alternating rounds per target (default 3)")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="sqlgate worker processes (default: one per core, "
        f"{os.cpu_count()} here); the idle test always uses 1",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        metavar="FILE",
        help="where to write the results (default bench/results/latest.json)",
    )
    parser.add_argument("--rows", type=int, help="rows in the stream test (default 1,000,000)")
    parser.add_argument("--idle", type=int, help="idle client connections (default 1,000)")
    parser.add_argument(
        "--only",
        default=",".join(PHASES),
        help=f"comma-separated phases to run (default {','.join(PHASES)})",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after the pgbench phase, py-spy the sqlgate workers during one "
        "more simple-mode run and report the hottest functions",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="MIN",
        help="first wait up to MIN minutes until other processes use under 10%% of the CPU",
    )
    parser.add_argument(
        "--no-recording",
        action="store_true",
        help="run sqlgate with `recording: {enabled: false}` (no audit trail, no session "
        "recording); by default both are on, as sqlgate ships",
    )
    parser.add_argument(
        "--gateway-yaml",
        type=Path,
        metavar="FILE",
        help="YAML appended to the sqlgate config, to measure other settings",
    )
    args = parser.parse_args(argv)
    phases = tuple(p.strip() for p in args.only.split(",") if p.strip())
    unknown = [p for p in phases if p not in PHASES]
    if unknown:
        parser.error(f"unknown phase(s) {unknown}; choose from {list(PHASES)}")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    quick = args.quick
    return Options(
        quick=quick,
        duration=args.duration or (3.0 if quick else 20.0),
        warmup=1.0 if quick else 3.0,
        rounds=args.rounds or (2 if quick else 3),
        stream_rounds=args.rounds or (2 if quick else 3),
        workers=args.workers,
        rows=args.rows or (100_000 if quick else 1_000_000),
        scale=10,
        connect_n=30 if quick else 300,
        idle_n=args.idle or (100 if quick else 1000),
        settle=0.5 if quick else 2.0,
        json_path=args.json.resolve(),
        phases=phases,
        profile=args.profile,
        gateway_yaml=(NO_RECORDING if args.no_recording else "")
        + (args.gateway_yaml.read_text() if args.gateway_yaml else ""),
        recording=not args.no_recording,
        wait_quiet_s=args.wait_quiet * 60,
    )


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(opts: Options, results: Results) -> None:
    """All phases; what was measured stays in `results` even when a later phase fails."""
    results.data.update(
        {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "quick": opts.quick,
            "machine": {
                "cpus": os.cpu_count(),
                "kernel": platform.release(),
                "python": platform.python_version(),
                "postgres": _version(["pgbench", "--version"]).removeprefix("pgbench "),
                "pgbouncer": _version(["pgbouncer", "--version"]),
            },
            "settings": {
                "sqlgate_workers": opts.workers,
                "pgbench_scale": opts.scale,
                "postgres": PG_SETTINGS,
                "phases": list(opts.phases),
                "sqlgate_recording_and_audit": opts.recording,
                "sqlgate_store": "sqlite (default sqlite:///sqlgate.db, in the work dir)",
                "gateway_extra_yaml": opts.gateway_yaml.strip() or None,
            },
            "sqlgate_source": source_fingerprint(),
        }
    )
    if opts.wait_quiet_s:
        wait_until_quiet(opts.wait_quiet_s)
    load = os.getloadavg()[0]
    if load > 0.5 * (os.cpu_count() or 1):
        progress(
            f"WARNING: the machine is busy before we start (1-min load {load:.1f} on "
            f"{os.cpu_count()} CPUs): expect noisy numbers"
        )
    results.data["load_avg_1min_at_start"] = round(load, 2)
    work = workdir()
    progress(f"work dir {work}")
    try:
        with contextlib.ExitStack() as stack:
            progress("starting PostgreSQL")
            pg = stack.enter_context(postgres(work / "pg", **PG_SETTINGS))
            METER.roots["postgres"] = pg.postmaster_pid() or 0
            prepare_data(pg, opts.scale, opts.rows)
            progress("starting PgBouncer")
            bouncer = stack.enter_context(pgbouncer(pg, work, max(opts.idle_n, 100)))
            METER.roots["pgbouncer"] = bouncer.process.pid
            direct = Endpoint("direct", pg.port, SVC_USER, SVC_PASSWORD)
            pooled = Endpoint(
                "pgbouncer", bouncer.port, SVC_USER, SVC_PASSWORD, bouncer.process.pid
            )
            if set(opts.phases) & {"pgbench", "stream", "connect"}:
                progress(f"starting sqlgate --workers {opts.workers}")
                with sqlgate(
                    pg, work, opts.workers, "sqlgate", opts.gateway_yaml, results.warnings
                ) as gw:
                    METER.roots["sqlgate"] = gw.process.pid
                    token = gw.token("bench-agent", AGENT_GROUP)
                    through = Endpoint("sqlgate", gw.port, "bench", token, gw.process.pid)
                    unmasked = Endpoint(
                        "sqlgate-unmasked",
                        gw.port,
                        "bench",
                        gw.token("bench-agent", UNMASKED_GROUP),
                        gw.process.pid,
                    )
                    checks = check_enforcement(through)
                    results.data["enforcement_checks"] = checks
                    failed = [k for k, v in checks.items() if not v]
                    if failed:
                        results.errors.append(f"policy enforcement checks failed: {failed}")
                    progress(f"enforcement checks: {failed or 'all passed'}")
                    three = [direct, pooled, through]
                    phases: dict[str, Callable[[], None]] = {
                        "pgbench": lambda: phase_pgbench(three, opts, results),
                        "stream": lambda: phase_stream([*three, unmasked], opts, results),
                        "connect": lambda: phase_connect(three, opts, results),
                    }
                    for name in ("pgbench", "stream", "connect"):
                        if name in opts.phases:
                            phases[name]()
                            if name == "pgbench" and opts.profile:
                                phase_profile(gw, through, opts, results)
            if "idle" in opts.phases:
                phase_idle(pg, bouncer, work, opts, results)
            progress("tearing down")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    # A shell starts background jobs with SIGINT ignored; Ctrl-C / kill -INT must still tear
    # everything down.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    results = Results()
    try:
        run(opts, results)
    except KeyboardInterrupt:
        progress("interrupted; everything was torn down")
        return 130
    except BenchError as exc:
        progress(f"failed: {exc}")
        results.errors.append(f"aborted: {exc}")
    if len(SOURCES_RUN) > 1:
        results.warnings.append(
            "sqlgate's source changed while the benchmark ran: the phases measured different "
            f"code ({sorted(SOURCES_RUN)})"
        )
    results.data["sqlgate_source"]["src_sha256_measured"] = sorted(SOURCES_RUN)
    results.data["errors"] = results.errors
    results.data["warnings"] = results.warnings
    results.data["ok"] = not results.errors
    opts.json_path.parent.mkdir(parents=True, exist_ok=True)
    opts.json_path.write_text(json.dumps(results.data, indent=2) + "\n")
    print()
    print(
        f"sqlgate benchmark, {results.data['date']}, {os.cpu_count()} CPU(s), "
        f"sqlgate --workers {opts.workers}, audit trail + recording "
        f"{'on' if opts.recording else 'off'}"
        f"{' (QUICK: not representative)' if opts.quick else ''}"
    )
    print()
    print(markdown_table(results.data))
    print()
    pgb = results.data.get("pgbench")
    if pgb:
        print(
            f"Other processes used {pgb['other_cpu_share_median']:.0%} (median; max "
            f"{pgb['other_cpu_share_max']:.0%}) of the machine's CPU during the pgbench runs."
        )
    for phase in ("stream", "connect"):
        share = results.data.get(phase, {}).get("other_cpu_share_median")
        if share is not None:
            print(
                f"Other processes used {share:.0%} (median) of the machine's CPU during the "
                f"{phase} runs."
            )
    prof = results.data.get("profile")
    if prof:
        print(
            f"\nhottest functions in sqlgate during pgbench -S simple "
            f"({prof['samples']} samples, {prof['tps_while_profiled']:.0f} TPS while profiled)"
        )
        print("  self time:")
        for row in prof["top_self"][:15]:
            print(f"    {row['percent']:5.1f}%  {row['function']}")
        print("  sqlgate functions, including their callees:")
        for row in prof["top_total"][:15]:
            print(f"    {row['percent']:5.1f}%  {row['function']}")
    for warning in results.warnings:
        print(f"WARNING: {warning}")
    for error in results.errors:
        print(f"ERROR: {error}")
    print(f"\nJSON: {opts.json_path}")
    return 0 if not results.errors else 1
