"""Throwaway PostgreSQL servers for tests and benches.

Each call to :func:`start_pg_server` runs ``initdb`` into a fresh directory, starts a
``postgres`` on a free 127.0.0.1 port and returns a :class:`PgServer` handle.  There is no
pytest import here so benches can use it too.

Running as root: ``initdb``/``postgres`` refuse to run as root, so when ``euid == 0`` the
binaries run as an unprivileged system user (``postgres``; ``SQLGATE_PG_USER`` overrides it,
and ``sqlgate-pg`` is created when neither exists).  That user must be able to traverse every
directory above the instance dir; pytest's ``/tmp/pytest-of-root`` is mode 0700, so when
``base_dir`` is not reachable the instance dir is created under a world-traversable (0711)
runtime root in the temp dir instead, and ``base_dir`` gets a symlink to it.

Environment overrides: ``SQLGATE_PG_BINDIR`` (directory holding initdb/pg_ctl/postgres),
``SQLGATE_PG_USER`` (server user when running as root).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import ipaddress
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import psycopg
from psycopg import sql as pgsql
from psycopg.conninfo import make_conninfo

__all__ = [
    "AUTH_METHODS",
    "PgServer",
    "PgServerError",
    "find_pg_bindir",
    "start_pg_server",
]

AUTH_METHODS: Final = frozenset({"scram-sha-256", "md5", "password", "trust"})

_PG_BINARIES: Final = ("initdb", "pg_ctl", "postgres")
_FALLBACK_SERVER_USER: Final = "sqlgate-pg"
# AF_UNIX sun_path is 108 bytes incl. NUL; postgres appends "/.s.PGSQL.<port>.lock".
_MAX_SOCKET_DIR_LEN: Final = 107 - len("/.s.PGSQL.65535.lock")
_START_TIMEOUT_S: Final = 30.0
_LOG_TAIL_LINES: Final = 40


class PgServerError(RuntimeError):
    """Starting, using or stopping a throwaway PostgreSQL server failed."""


# --------------------------------------------------------------------------- binaries


def _version_key(path: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin -> numeric sort on <version>
    return tuple(int(p) for p in re.findall(r"\d+", path.parent.name))


def find_pg_bindir() -> Path:
    """Directory with initdb, pg_ctl and postgres (newest /usr/lib/postgresql/*/bin wins)."""
    candidates: list[Path] = []
    env = os.environ.get("SQLGATE_PG_BINDIR")
    if env:
        candidates.append(Path(env))
    candidates.extend(
        sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    )
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
            candidates.append(Path(out))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for cand in candidates:
        if all(os.access(cand / b, os.X_OK) for b in _PG_BINARIES):
            return cand
    raise PgServerError(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; looked in "
        f"{[str(c) for c in candidates]}. Install them (Debian: apt-get install postgresql-15) "
        "or set SQLGATE_PG_BINDIR."
    )


# --------------------------------------------------------------------------- running as root


@dataclass(frozen=True)
class _RunAs:
    """The unprivileged account the server runs as (only used when we are root)."""

    name: str
    uid: int
    gid: int
    groups: frozenset[int]


def _server_account() -> _RunAs | None:
    if os.geteuid() != 0:
        return None
    wanted = os.environ.get("SQLGATE_PG_USER")
    names = [wanted] if wanted else ["postgres", _FALLBACK_SERVER_USER]
    for name in names:
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        return _RunAs(name, pw.pw_uid, pw.pw_gid, frozenset(os.getgrouplist(name, pw.pw_gid)))
    if wanted:
        raise PgServerError(f"SQLGATE_PG_USER={wanted!r} does not exist")
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    proc = subprocess.run(
        [
            useradd, "--system", "--user-group", "--no-create-home",
            "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", _FALLBACK_SERVER_USER,
        ],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    try:
        pw = pwd.getpwnam(_FALLBACK_SERVER_USER)
    except KeyError:
        raise PgServerError(
            f"running as root and no 'postgres' user; useradd {_FALLBACK_SERVER_USER} failed: "
            f"{proc.stderr.strip()}"
        ) from None
    return _RunAs(
        pw.pw_name, pw.pw_uid, pw.pw_gid, frozenset(os.getgrouplist(pw.pw_name, pw.pw_gid))
    )


def _reachable_by(path: Path, who: _RunAs | None) -> bool:
    """Whether ``who`` may traverse every directory from / down to ``path`` (inclusive)."""
    if who is None:
        return True
    path = path.resolve()
    for d in [*reversed(path.parents), path]:
        st = d.stat()
        if st.st_uid == who.uid:
            bit = stat.S_IXUSR
        elif st.st_gid in who.groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def _runtime_root(who: _RunAs | None) -> Path:
    """A short, world-traversable (0711) dir owned by us, for instance dirs and sockets."""
    tried: list[str] = []
    for tmp in dict.fromkeys([tempfile.gettempdir(), "/tmp"]):
        root = Path(tmp) / f"sqlgate-pg-{os.geteuid()}"
        try:
            root.mkdir(mode=0o711, exist_ok=True)
            st = root.lstat()
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
                raise PgServerError(f"{root} is not a directory owned by uid {os.geteuid()}")
            root.chmod(0o711)
        except OSError as exc:
            tried.append(f"{root}: {exc}")
            continue
        if _reachable_by(root, who):
            return root
        tried.append(f"{root}: not traversable by the server user")
    raise PgServerError("no usable runtime dir for PostgreSQL: " + "; ".join(tried))


# --------------------------------------------------------------------------- misc helpers


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _conf_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<no server log at {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:]) or "<server log is empty>"


def _write_server_cert(datadir: Path) -> tuple[Path, Path]:
    """Self-signed EC P-256 cert (CN=localhost, SAN localhost + 127.0.0.1), usable as its own CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    crt_path, key_path = datadir / "server.crt", datadir / "server.key"
    crt_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    crt_path.chmod(0o644)
    key_path.chmod(0o600)
    return crt_path, key_path


def _hba(auth: str, hostssl_only: bool) -> str:
    host_kind = "hostssl" if hostssl_only else "host"
    return (
        "# generated by tests/support/pgserver.py\n"
        "# TYPE     DATABASE  USER  ADDRESS        METHOD\n"
        "local      all       all                  trust\n"
        f"{host_kind:<10} all       all   127.0.0.1/32   {auth}\n"
        f"{host_kind:<10} all       all   ::1/128        {auth}\n"
    )


# --------------------------------------------------------------------------- the handle


@dataclass(eq=False)
class PgServer:
    """A running throwaway PostgreSQL server.  Use :func:`start_pg_server` to make one."""

    host: str
    port: int
    datadir: Path
    superuser: str
    superuser_password: str = field(repr=False)
    socket_dir: Path = field(default=Path())
    log_path: Path = field(default=Path())
    ca_cert_path: Path | None = None
    auth: str = "scram-sha-256"
    ssl: bool = False
    hostssl_only: bool = False
    bindir: Path = field(default=Path(), repr=False)
    server_version: str = ""
    instance_dir: Path = field(default=Path(), repr=False)
    _run_as: _RunAs | None = field(default=None, repr=False)
    _cleanup_paths: list[Path] = field(default_factory=list, repr=False)
    _conf: dict[str, str] = field(default_factory=dict, repr=False)
    _registry_entry: Path | None = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)

    # -- connection strings -------------------------------------------------------------

    def dsn(
        self,
        user: str | None = None,
        password: str | None = None,
        dbname: str = "postgres",
        **params: Any,
    ) -> str:
        """libpq keyword DSN for TCP 127.0.0.1:port.

        ``user=None`` means the superuser with its password (unless ``password`` is given).
        Extra ``params`` (``sslmode``, ``sslrootcert``, ``connect_timeout``, ``host``, ...) are
        added or override; ``None`` values are dropped.
        """
        if user is None or (user == self.superuser and password is None):
            user = self.superuser
            password = self.superuser_password if password is None else password
        conn_params: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "dbname": dbname,
            "user": user,
            "password": password,
        }
        conn_params.update(params)  # may override host (e.g. "localhost" for verify-full)
        return make_conninfo("", **conn_params)

    def admin_conninfo(self, dbname: str = "postgres") -> str:
        """DSN over the unix socket (pg_hba ``local ... trust``): independent of auth/ssl."""
        return make_conninfo(
            "",
            host=str(self.socket_dir),
            port=self.port,
            dbname=dbname,
            user=self.superuser,
            sslmode="disable",
            connect_timeout=10,
        )

    def connect(
        self, dbname: str = "postgres", *, autocommit: bool = True
    ) -> psycopg.Connection[Any]:
        """Superuser psycopg connection over the unix socket."""
        return psycopg.connect(self.admin_conninfo(dbname), autocommit=autocommit)

    # -- admin helpers ------------------------------------------------------------------

    def execute(
        self,
        sql: str | pgsql.SQL | pgsql.Composed,
        dbname: str = "postgres",
        params: Any = None,
    ) -> list[tuple[Any, ...]]:
        """Run ``sql`` as superuser (autocommit) and return the rows of the last statement
        that produced a result set, or ``[]``.  Several ``;``-separated statements are allowed
        when ``params`` is None."""
        self._check_running()
        with self.connect(dbname) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            rows: list[tuple[Any, ...]] = []
            while True:
                if cur.description is not None:
                    rows = cur.fetchall()
                if not cur.nextset():
                    break
            return rows

    def create_role(
        self,
        name: str,
        password: str | None,
        *,
        superuser: bool = False,
        login: bool = True,
    ) -> None:
        """CREATE ROLE; the password is hashed per the server's password_encryption
        (md5 when ``auth="md5"``, SCRAM otherwise)."""
        q = pgsql.SQL("CREATE ROLE {} {} {} PASSWORD {}").format(
            pgsql.Identifier(name),
            pgsql.SQL("SUPERUSER" if superuser else "NOSUPERUSER"),
            pgsql.SQL("LOGIN" if login else "NOLOGIN"),
            pgsql.Literal(password) if password is not None else pgsql.SQL("NULL"),
        )
        self.execute(q)

    def create_database(self, name: str, owner: str | None = None) -> None:
        q = pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name))
        if owner is not None:
            q = pgsql.SQL("{} OWNER {}").format(q, pgsql.Identifier(owner))
        self.execute(q)

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.datadir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        return _tail(self.log_path, lines)

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return not self._stopped

    def stop(self) -> None:
        """``pg_ctl stop -m immediate`` and remove the instance dir.  Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        _LIVE.pop(id(self), None)
        try:
            _stop_postmaster(self.bindir, self.datadir, self._run_as, self.instance_dir)
        finally:
            for p in self._cleanup_paths:
                _remove(p)
            if self._registry_entry is not None:
                self._registry_entry.unlink(missing_ok=True)

    def __enter__(self) -> PgServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _check_running(self) -> None:
        if self._stopped:
            raise PgServerError(f"server on port {self.port} was stopped")


_LIVE: dict[int, PgServer] = {}


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_LIVE.values()):
        with contextlib.suppress(Exception):
            server.stop()


# Servers outlive a SIGKILLed test process (the postmaster runs in its own session), so every
# server is recorded in <runtime root>/live/*.json and start_pg_server() reaps the servers of
# owner processes that no longer exist.


def _proc_start_time(pid: int) -> str | None:
    """Start time of ``pid`` (from /proc, to tell pid reuse apart), "" if unknown, None if dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat_line.rsplit(")", 1)[1].split()[19]


def _write_registry_entry(server: PgServer, root: Path) -> None:
    live = root / "live"
    live.mkdir(mode=0o700, exist_ok=True)
    entry = server._registry_entry or live / f"{secrets.token_hex(8)}.json"
    data = {
        "owner_pid": os.getpid(),
        "owner_start": _proc_start_time(os.getpid()),
        "datadir": str(server.datadir),
        "postmaster_pid": server.postmaster_pid(),
        "cleanup": [str(p) for p in server._cleanup_paths],
    }
    tmp = entry.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(entry)
    server._registry_entry = entry


def _reap_orphans(root: Path) -> None:
    live = root / "live"
    if not live.is_dir():
        return
    for entry in live.glob("*.json"):
        try:
            data = json.loads(entry.read_text())
            owner_pid = int(data["owner_pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        started = _proc_start_time(owner_pid)
        if started is not None and started == (data.get("owner_start") or started):
            continue  # owner still alive
        datadir = Path(str(data.get("datadir", "")))
        pids: set[int] = set()
        if isinstance(data.get("postmaster_pid"), int):
            pids.add(data["postmaster_pid"])
        with contextlib.suppress(OSError, ValueError):
            pids.add(int((datadir / "postmaster.pid").read_text().split("\n", 1)[0]))
        for pid in pids:
            _kill_postmaster(pid, datadir)
        for p in data.get("cleanup", []):
            _remove(Path(str(p)))
        entry.unlink(missing_ok=True)


def _kill_postmaster(pid: int, datadir: Path) -> None:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return
    if "postgres" not in cmdline or str(datadir) not in cmdline:
        return  # pid reused by something else
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGQUIT)  # = pg_ctl stop -m immediate
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)


def _run(
    cmd: list[str],
    run_as: _RunAs | None,
    cwd: Path,
    timeout: float,
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    kwargs: dict[str, Any] = {}
    if run_as is not None:
        kwargs = {"user": run_as.uid, "group": run_as.gid, "extra_groups": []}
        env["HOME"] = str(cwd)
        env["USER"] = env["LOGNAME"] = run_as.name
    return subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        **kwargs,
    )


def _stop_postmaster(bindir: Path, datadir: Path, run_as: _RunAs | None, cwd: Path) -> None:
    pidfile = datadir / "postmaster.pid"
    if not pidfile.exists():
        return
    try:
        proc = _run(
            [str(bindir / "pg_ctl"), "stop", "-D", str(datadir), "-m", "immediate", "-w", "-s",
             "-t", "15"],
            run_as, cwd, timeout=30,
        )  # fmt: skip
        ok = proc.returncode == 0
    except subprocess.TimeoutExpired:
        ok = False
    if not ok and pidfile.exists():
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pidfile.read_text().split("\n", 1)[0]), signal.SIGKILL)


# --------------------------------------------------------------------------- start


def start_pg_server(
    base_dir: Path,
    *,
    auth: str = "scram-sha-256",
    ssl: bool = False,
    hostssl_only: bool = False,
    port: int | None = None,
    settings: dict[str, str] | None = None,
    superuser: str = "postgres",
) -> PgServer:
    """initdb + start a throwaway server listening on 127.0.0.1:``port`` (random if None).

    ``auth``: pg_hba method for TCP from 127.0.0.1 (all users/dbs), one of AUTH_METHODS;
    ``password_encryption`` is md5 when ``auth == "md5"``, else scram-sha-256.
    ``ssl``: self-signed cert (see ``PgServer.ca_cert_path``), ``ssl=on``.
    ``hostssl_only``: pg_hba has only ``hostssl`` lines, so non-TLS TCP clients are
    rejected (implies ``ssl=True``).
    ``settings``: extra/overriding postgresql.conf settings (e.g. ``max_connections``).
    """
    if auth not in AUTH_METHODS:
        raise ValueError(f"auth must be one of {sorted(AUTH_METHODS)}, got {auth!r}")
    ssl = ssl or hostssl_only
    bindir = find_pg_bindir()
    run_as = _server_account()
    base_dir = Path(base_dir)
    base_dir.mkdir(parents=True, exist_ok=True)

    runtime_root = _runtime_root(run_as)
    _reap_orphans(runtime_root)

    cleanup: list[Path] = []
    try:
        if _reachable_by(base_dir, run_as):
            instance = Path(tempfile.mkdtemp(prefix="pg-", dir=base_dir))
            cleanup.append(instance)
        else:
            instance = Path(tempfile.mkdtemp(prefix="pg-", dir=runtime_root))
            cleanup.append(instance)
            link = base_dir / instance.name
            link.symlink_to(instance, target_is_directory=True)
            cleanup.append(link)

        socket_dir = instance / "s"
        if len(str(socket_dir)) > _MAX_SOCKET_DIR_LEN:
            socket_dir = Path(tempfile.mkdtemp(prefix="s-", dir=runtime_root))
            cleanup.append(socket_dir)
        else:
            socket_dir.mkdir(mode=0o700)
        for d in {instance, socket_dir}:
            d.chmod(0o700)
            if run_as is not None:
                os.chown(d, run_as.uid, run_as.gid)
    except BaseException:
        for p in cleanup:
            _remove(p)
        raise

    datadir = instance / "data"
    log_path = datadir / "server.log"
    server = PgServer(
        host="127.0.0.1",
        port=port or 0,
        datadir=datadir,
        superuser=superuser,
        superuser_password=secrets.token_urlsafe(18),
        socket_dir=socket_dir,
        log_path=log_path,
        auth=auth,
        ssl=ssl,
        hostssl_only=hostssl_only,
        bindir=bindir,
        instance_dir=instance,
        _run_as=run_as,
        _cleanup_paths=cleanup,
    )
    try:
        _write_registry_entry(server, runtime_root)
        _initdb(server)
        _configure(server, settings or {})
        _start(server, fixed_port=port)
        _LIVE[id(server)] = server
        _write_registry_entry(server, runtime_root)  # now with the postmaster pid
        _wait_ready(server)
        server.execute(
            pgsql.SQL("ALTER ROLE {} PASSWORD {}").format(
                pgsql.Identifier(superuser), pgsql.Literal(server.superuser_password)
            )
        )
        server.server_version = str(server.execute("SHOW server_version")[0][0])
    except BaseException as exc:
        log = _tail(log_path)
        server.stop()
        if isinstance(exc, PgServerError | OSError | psycopg.Error | subprocess.SubprocessError):
            raise PgServerError(f"{exc}\n--- server log tail ({log_path}) ---\n{log}") from exc
        raise
    return server


def _initdb(server: PgServer) -> None:
    proc = _run(
        [
            str(server.bindir / "initdb"), "-D", str(server.datadir), "-U", server.superuser,
            "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions",
        ],
        server._run_as, server.instance_dir, timeout=120,
    )  # fmt: skip
    if proc.returncode != 0:
        raise PgServerError(f"initdb failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def _configure(server: PgServer, extra: Mapping[str, str]) -> None:
    datadir = server.datadir
    (datadir / "pg_hba.conf").write_text(_hba(server.auth, server.hostssl_only))
    conf: dict[str, str] = {
        "listen_addresses": server.host,
        "unix_socket_directories": str(server.socket_dir),
        "max_connections": "200",
        "shared_buffers": "16MB",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "jit": "off",
        "password_encryption": "md5" if server.auth == "md5" else "scram-sha-256",
        "timezone": "UTC",
        "log_timezone": "UTC",
        "lc_messages": "C",
        "logging_collector": "off",
        "log_destination": "stderr",
        "log_line_prefix": "%m [%p] %q%u@%d ",
        "log_connections": "on",
    }
    if server.ssl:
        crt, key = _write_server_cert(datadir)
        if server._run_as is not None:
            for p in (crt, key):
                os.chown(p, server._run_as.uid, server._run_as.gid)
        server.ca_cert_path = crt
        conf.update({"ssl": "on", "ssl_cert_file": crt.name, "ssl_key_file": key.name})
    conf.update({str(k): str(v) for k, v in extra.items()})
    server._conf = conf
    with (datadir / "postgresql.conf").open("a") as fh:
        fh.write("\n# sqlgate test settings\ninclude = 'sqlgate.conf'\n")


def _write_conf(server: PgServer) -> None:
    conf = dict(server._conf)
    conf["port"] = str(server.port)
    path = server.datadir / "sqlgate.conf"
    path.write_text("".join(f"{k} = {_conf_quote(v)}\n" for k, v in conf.items()))
    if server._run_as is not None:
        os.chown(path, server._run_as.uid, server._run_as.gid)


def _start(server: PgServer, fixed_port: int | None) -> None:
    attempts = 1 if fixed_port else 5
    for attempt in range(attempts):
        server.port = fixed_port or _free_port(server.host)
        _write_conf(server)
        proc = _run(
            [str(server.bindir / "pg_ctl"), "start", "-D", str(server.datadir),
             "-l", str(server.log_path), "-w", "-s", "-t", str(int(_START_TIMEOUT_S))],
            server._run_as, server.instance_dir, timeout=_START_TIMEOUT_S + 15,
        )  # fmt: skip
        if proc.returncode == 0:
            return
        log = _tail(server.log_path)
        port_taken = "could not bind" in log or "Address already in use" in log
        if not port_taken or attempt == attempts - 1:
            raise PgServerError(
                f"pg_ctl start failed ({proc.returncode}) on port {server.port}:\n"
                f"{proc.stdout}{proc.stderr}"
            )
        # Someone grabbed the port between probing and binding: try another.
        _stop_postmaster(server.bindir, server.datadir, server._run_as, server.instance_dir)
        server.log_path.unlink(missing_ok=True)


def _wait_ready(server: PgServer, timeout: float = _START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(server.admin_conninfo(), autocommit=True) as conn:
                conn.execute("SELECT 1")
            with socket.create_connection((server.host, server.port), timeout=2):
                return
        except (psycopg.OperationalError, OSError) as exc:
            last = exc
            time.sleep(0.05)
    raise PgServerError(f"server on port {server.port} not ready after {timeout}s: {last}")
