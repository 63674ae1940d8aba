"""A real JDBC client (PostgreSQL JDBC driver) for tests.

``java/JdbcProbe.java`` is compiled on first use into a cache dir under ``base_dir`` (keyed by
a hash of the source, the driver jar and the javac version, so a shared/session base dir
compiles once) and run against a JDBC URL.  It prints ``PROBE {json}`` lines, one per step:

    connect, create_temp_table, insert_prepared, select_binary, batch_insert, txn_commit,
    txn_rollback, error_recovery, txn_error, prepared_error, metadata_tables, close, done

Each step dict has ``ok`` (bool) and ``ms``; a failed one has ``error``, ``exception`` and
``sqlstate`` (when it was an SQLException).  Only a temporary table is used.

Environment overrides: ``SQLGATE_PG_JDBC_JAR`` (driver jar), ``JAVA_HOME``.
No pytest import here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

__all__ = [
    "PROBE_SOURCE",
    "PROBE_STEPS",
    "JdbcProbeError",
    "JdbcResult",
    "compile_jdbc_probe",
    "find_java",
    "find_pg_jdbc_jar",
    "jdbc_url",
    "run_jdbc_probe",
]

PROBE_SOURCE: Final = Path(__file__).resolve().parent / "java" / "JdbcProbe.java"
PROBE_STEPS: Final = (
    "connect",
    "create_temp_table",
    "insert_prepared",
    "select_binary",
    "batch_insert",
    "txn_commit",
    "txn_rollback",
    "error_recovery",
    "txn_error",
    "prepared_error",
    "metadata_tables",
    "close",
)
_PREFIX: Final = "PROBE "
_JAR_GLOBS: Final = (
    "/usr/share/java/postgresql.jar",
    "/usr/share/java/postgresql-*.jar",
    "/usr/share/maven-repo/org/postgresql/postgresql/*/postgresql-*.jar",
)
_JVM_FLAGS: Final = (
    "-Duser.timezone=UTC",
    "-Dfile.encoding=UTF-8",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Xshare:auto",
)


class JdbcProbeError(RuntimeError):
    """Compiling or running the JDBC probe failed."""


@dataclass
class JdbcResult:
    """Parsed probe output.  ``steps`` maps step name -> its JSON object."""

    returncode: int
    steps: dict[str, dict[str, Any]]
    stdout: str
    stderr: str = field(repr=False)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and bool(self.steps.get("done", {}).get("ok"))

    @property
    def failed_steps(self) -> list[str]:
        return [name for name, s in self.steps.items() if not s.get("ok")]

    def __getitem__(self, step: str) -> dict[str, Any]:
        try:
            return self.steps[step]
        except KeyError:
            raise KeyError(
                f"probe printed no step {step!r}; got {list(self.steps)}\n{self.describe()}"
            ) from None

    def describe(self) -> str:
        return (
            f"JdbcProbe exit={self.returncode} failed={self.failed_steps}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


# --------------------------------------------------------------------------- discovery


def find_java(tool: str = "java") -> Path:
    """``java`` or ``javac`` from $JAVA_HOME/bin, else PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.access(Path(java_home) / "bin" / tool, os.X_OK):
        return Path(java_home) / "bin" / tool
    found = shutil.which(tool)
    if found:
        return Path(found)
    raise JdbcProbeError(
        f"{tool} not found (JAVA_HOME or PATH); Debian: apt-get install default-jdk-headless"
    )


def find_pg_jdbc_jar() -> Path:
    """The PostgreSQL JDBC driver jar ($SQLGATE_PG_JDBC_JAR, else Debian/maven-repo paths)."""
    env = os.environ.get("SQLGATE_PG_JDBC_JAR")
    if env:
        if Path(env).is_file():
            return Path(env).resolve()
        raise JdbcProbeError(f"SQLGATE_PG_JDBC_JAR={env!r} is not a file")
    for pattern in _JAR_GLOBS:
        matches = sorted(Path("/").glob(pattern.lstrip("/")), reverse=True)
        for m in matches:
            if m.is_file():
                return m.resolve()
    raise JdbcProbeError(
        f"PostgreSQL JDBC jar not found in {list(_JAR_GLOBS)}; "
        "Debian: apt-get install libpostgresql-jdbc-java, or set SQLGATE_PG_JDBC_JAR"
    )


def jdbc_url(host: str, port: int, dbname: str = "postgres", **params: Any) -> str:
    """``jdbc:postgresql://host:port/dbname?k=v&...`` (None values dropped, bools lowercased)."""
    query = "&".join(
        f"{k}={quote(str(v).lower() if isinstance(v, bool) else str(v), safe='')}"
        for k, v in params.items()
        if v is not None
    )
    url = f"jdbc:postgresql://{host}:{port}/{quote(dbname, safe='')}"
    return f"{url}?{query}" if query else url


# --------------------------------------------------------------------------- compile/run


def compile_jdbc_probe(cache_dir: Path) -> tuple[Path, Path]:
    """Compile JdbcProbe into ``cache_dir/<hash>/`` unless already there.

    Returns (classes dir, jar).  Safe against concurrent callers (atomic rename).
    """
    jar = find_pg_jdbc_jar()
    javac = find_java("javac")
    source = PROBE_SOURCE.read_bytes()
    jst = jar.stat()
    key = hashlib.sha256(
        source + f"\0{jar}\0{jst.st_size}\0{jst.st_mtime_ns}\0{javac.resolve()}".encode()
    ).hexdigest()[:16]
    target = Path(cache_dir) / f"JdbcProbe-{key}"
    if (target / "JdbcProbe.class").is_file():
        return target, jar
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".jdbcprobe-build-", dir=target.parent))
    try:
        proc = subprocess.run(
            [str(javac), "-Xlint:all", "-Werror", "--release", "17", "-encoding", "UTF-8",
             "-cp", str(jar), "-d", str(work), str(PROBE_SOURCE)],
            capture_output=True, text=True, check=False, timeout=180,
        )  # fmt: skip
        if proc.returncode != 0:
            raise JdbcProbeError(f"javac failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        try:
            work.rename(target)
        except OSError:
            if not (target / "JdbcProbe.class").is_file():  # lost a race only if it exists
                raise
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return target, jar


def parse_probe_output(stdout: str) -> dict[str, dict[str, Any]]:
    steps: dict[str, dict[str, Any]] = {}
    for line in stdout.splitlines():
        if not line.startswith(_PREFIX):
            continue
        obj = json.loads(line[len(_PREFIX) :])
        if not isinstance(obj, dict) or "step" not in obj:
            raise JdbcProbeError(f"unexpected probe line: {line!r}")
        steps[str(obj["step"])] = obj
    return steps


def run_jdbc_probe(
    base_dir: Path,
    url: str,
    user: str,
    password: str | None,
    timeout: float = 60,
    *,
    check: bool = True,
    cache_dir: Path | None = None,
) -> JdbcResult:
    """Run the JDBC scenario against ``url`` as ``user``/``password``.

    The class is compiled into ``cache_dir`` (default ``base_dir / "jdbc-probe-cache"``).
    With ``check=True`` (default) any failed step, a non-zero exit, a timeout or missing
    output raises :class:`JdbcProbeError` with the full stdout/stderr; with ``check=False``
    only a timeout or unparsable output raises, so tests can assert on expected failures.
    """
    classes, jar = compile_jdbc_probe(cache_dir or Path(base_dir) / "jdbc-probe-cache")
    java = find_java("java")
    env = {k: v for k, v in os.environ.items() if k not in {"JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS"}}
    env.pop("SQLGATE_JDBC_PASSWORD", None)
    if password is not None:
        env["SQLGATE_JDBC_PASSWORD"] = password
    cmd = [str(java), *_JVM_FLAGS, "-cp", f"{classes}{os.pathsep}{jar}", "JdbcProbe", url, user]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, check=False, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        out = _text(exc.stdout)
        err = _text(exc.stderr)
        with contextlib.suppress(JdbcProbeError, ValueError):
            last = list(parse_probe_output(out))[-1:] or ["<none>"]
            out += f"\n(last completed step: {last[0]})"
        raise JdbcProbeError(
            f"JdbcProbe timed out after {timeout}s against {url}\n"
            f"--- stdout ---\n{out}\n--- stderr ---\n{err}"
        ) from None
    try:
        steps = parse_probe_output(proc.stdout)
    except (ValueError, JdbcProbeError) as exc:
        raise JdbcProbeError(
            f"unparsable JdbcProbe output ({exc})\n--- stdout ---\n{proc.stdout}\n"
            f"--- stderr ---\n{proc.stderr}"
        ) from exc
    result = JdbcResult(proc.returncode, steps, proc.stdout, proc.stderr)
    if "done" not in steps:
        raise JdbcProbeError(f"JdbcProbe did not finish against {url}\n{result.describe()}")
    if check and not result.ok:
        raise JdbcProbeError(f"JdbcProbe failed against {url}\n{result.describe()}")
    return result


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data
