"""The deployment shape on one machine: PostgreSQL, one ``p11-kit server`` holding the CA
token, replicas of ``eseal serve`` and a front (HAProxy) that spreads requests over them.

    python -m deploy.cluster up [--replicas 3] [--dir var/cluster]   # make cluster
    python -m deploy.cluster down [--dir var/cluster]                # make cluster-stop

What each piece is, and why it is shaped so:

* **PostgreSQL** — a throwaway server (``initdb`` + ``pg_ctl``) in ``DIR/pg``, on loopback,
  run as the unprivileged ``postgres`` user when we are root (PostgreSQL refuses root).
* **The CA home** ``DIR/ca`` — made by ``eseal init`` against that database: it holds the
  SoftHSM token directory, the CA PIN and the first officer's USB-Key. Only this host
  touches the token's files.
* **The token server** — ``p11-kit server`` serves the home's ``eseal-ca`` token on a unix
  socket (``DIR/ca.sock``); every replica reaches it through Debian's
  ``p11-kit-client.so`` (``pkcs11_module`` + ``p11_kit_server_address`` in its home).
  Across hosts the socket is forwarded (e.g. ``ssh -L``), it is not a network HSM.
* **Replicas** ``DIR/r1..rN`` — made by ``eseal init --join``: no keys of their own, the
  database URL in ``secrets/database.url``, a copy of the CA PIN, and one shared audit
  journal (``DIR/audit/checkpoints.jsonl``: every replica's checkpoints in one file).
* **The front** — HAProxy on ``127.0.0.1:FRONT`` (round robin, ``/healthz`` checks),
  installed with apt by ``make cluster`` itself so ``make test`` stays lean.

``up`` writes ``DIR/cluster.json`` (ports, pids, URLs) for ``down``, the load driver and the
benchmark; Ctrl-C in the foreground tears everything down.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

CLIENT_MODULE = "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so"
SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
CA_LABEL = "eseal-ca"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited early ({proc.returncode})")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a child: nothing of ours (ESEAL_*, SOFTHSM2_CONF) leaks in."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ESEAL_") and k not in ("SOFTHSM2_CONF", "P11_KIT_SERVER_ADDRESS")}
    env.update(extra)
    return env


def eseal(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "eseal", *args], env=env, text=True,
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=300)
    if check and done.returncode != 0:
        raise RuntimeError(f"eseal {' '.join(args[:2])} failed:\n{done.stderr}{done.stdout}")
    return done


# --- PostgreSQL ----------------------------------------------------------------------------
def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@dataclass
class Postgres:
    """A throwaway PostgreSQL server in ``root`` on a loopback port."""

    root: Path
    port: int = 0

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://eseal@127.0.0.1:{self.port}/eseal"

    def _as_owner(self, *cmd: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)

    def start(self) -> Postgres:
        bindir = postgres_bin()
        if bindir is None:
            raise RuntimeError("PostgreSQL binaries not found (apt-get install postgresql)")
        self.port = self.port or free_port()
        data = self.root / "data"
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        run = {"check": True, "capture_output": True, "stdin": subprocess.DEVNULL,
               "cwd": "/"}
        if not (data / "PG_VERSION").exists():
            done = subprocess.run(self._as_owner(
                str(bindir / "initdb"), "-D", str(data), "--no-sync", "-A", "trust", "-U",
                "eseal", "-E", "UTF8"), capture_output=True, text=True,
                stdin=subprocess.DEVNULL, cwd="/", check=False)
            if done.returncode != 0:
                raise RuntimeError(f"initdb failed (every directory above {self.root} must be "
                                   f"reachable by the postgres user):\n{done.stderr}")
        subprocess.run(self._as_owner(
            str(bindir / "pg_ctl"), "-D", str(data), "-l", str(self.root / "server.log"), "-w",
            "-o", f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
                  "-c max_connections=200 -c fsync=off -c synchronous_commit=off",
            "start"), **run)
        subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                        "-U", "eseal", "eseal"], capture_output=True, check=False)
        return self

    def stop(self) -> None:
        bindir = postgres_bin()
        if bindir is None or not (self.root / "data" / "postmaster.pid").exists():
            return
        subprocess.run(self._as_owner(str(bindir / "pg_ctl"), "-D", str(self.root / "data"),
                                      "-m", "fast", "-w", "stop"),
                       capture_output=True, check=False, cwd="/")


# --- the token server ----------------------------------------------------------------------
@dataclass
class TokenServer:
    """``p11-kit server`` serving one SoftHSM token on a unix socket."""

    softhsm_conf: Path
    socket: Path
    label: str = CA_LABEL
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"unix:path={self.socket}"

    def start(self) -> TokenServer:
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        tool = shutil.which("p11-kit")
        if tool is None:
            raise RuntimeError("p11-kit not found (apt-get install p11-kit p11-kit-modules)")
        self.process = subprocess.Popen(
            [tool, "server", "-f", "--provider", SOFTHSM_MODULE, "-n", str(self.socket),
             f"pkcs11:token={self.label}"],
            env=clean_env(SOFTHSM2_CONF=str(self.softhsm_conf)), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("p11-kit server did not start")
            time.sleep(0.02)
        return self

    def children(self) -> list[int]:
        """The ``p11-kit-remote`` processes it forked, one per client connection."""
        if self.process is None:
            return []
        pid = self.process.pid
        try:
            text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def kill_children(self) -> list[int]:
        killed = self.children()
        for pid in killed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return killed

    def stop(self) -> None:
        if self.process is None:
            return
        for pid in self.children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


# --- the cluster ---------------------------------------------------------------------------
@dataclass
class Cluster:
    root: Path
    replicas: int = 3
    front: bool = True
    pg: Postgres | None = None
    token: TokenServer | None = None
    serves: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    haproxy: subprocess.Popen[bytes] | None = None
    front_port: int = 0
    officer_pin: str = ""
    database: str = "postgresql"  # or "sqlite": one shared file, for comparison

    @property
    def database_url(self) -> str:
        if self.pg is not None:
            return self.pg.url
        return f"sqlite:///{self.root / 'eseal.db'}"

    @property
    def ca_home(self) -> Path:
        return self.root / "ca"

    @property
    def journal(self) -> Path:
        return self.root / "audit" / "checkpoints.jsonl"

    def replica_home(self, i: int) -> Path:
        return self.root / f"r{i + 1}"

    def replica_env(self, i: int) -> dict[str, str]:
        return clean_env(ESEAL_HOME=str(self.replica_home(i)))

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.ports]

    def up(self) -> Cluster:
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        self.front_port = self.front_port or free_port()
        base_url = f"http://127.0.0.1:{self.front_port}"
        if self.database == "postgresql":
            self.pg = Postgres(self.root / "pg").start()
        init = eseal("init", "--home", str(self.ca_home), "--base-url", base_url,
                     env=clean_env(ESEAL_DATABASE_URL=self.database_url,
                                   ESEAL_AUDIT_JOURNAL=str(self.journal)))
        self.officer_pin = init.stdout.strip().splitlines()[-1].strip()
        self.token = TokenServer(self.ca_home / "softhsm2.conf", self.root / "ca.sock").start()
        for i in range(self.replicas):
            eseal("init", "--join", "--home", str(self.replica_home(i)),
                  "--ca-pin-file", str(self.ca_home / "secrets" / "ca.pin"),
                  env=clean_env(ESEAL_DATABASE_URL=self.database_url,
                                ESEAL_PKCS11_MODULE=CLIENT_MODULE,
                                ESEAL_P11_KIT_SERVER_ADDRESS=self.token.address,
                                ESEAL_AUDIT_JOURNAL=str(self.journal)))
        self.ports = [free_port() for _ in range(self.replicas)]
        for i, port in enumerate(self.ports):
            log = (self.root / f"r{i + 1}.log").open("wb")
            self.serves.append(subprocess.Popen(
                [sys.executable, "-m", "eseal", "serve", "--home", str(self.replica_home(i)),
                 "--port", str(port)], env=self.replica_env(i), stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        for url, proc in zip(self.urls, self.serves, strict=True):
            wait_http(f"{url}/healthz", proc)
        if self.front:
            self._start_front()
        self._write_state()
        return self

    def _start_front(self) -> None:
        tool = shutil.which("haproxy")
        if tool is None:
            raise RuntimeError("haproxy not found (make cluster installs it)")
        servers = "\n".join(f"    server r{i + 1} 127.0.0.1:{p} check"
                            for i, p in enumerate(self.ports))
        cfg = self.root / "haproxy.cfg"
        cfg.write_text(f"""global
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option http-keep-alive
frontend eseal
    bind 127.0.0.1:{self.front_port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /healthz
    option forwardfor
{servers}
""")
        self.haproxy = subprocess.Popen([tool, "-f", str(cfg), "-db"], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        wait_http(f"http://127.0.0.1:{self.front_port}/healthz", self.haproxy)

    def _write_state(self) -> None:
        assert self.token is not None and self.token.process
        state = {
            "front": f"http://127.0.0.1:{self.front_port}" if self.front else None,
            "replicas": self.urls, "database_url": self.database_url,
            "token_server": self.token.address, "ca_home": str(self.ca_home),
            "replica_homes": [str(self.replica_home(i)) for i in range(self.replicas)],
            "pids": [p.pid for p in self.serves] + [self.token.process.pid]
                    + ([self.haproxy.pid] if self.haproxy else []),
            "pg_root": str(self.pg.root) if self.pg else None,
        }
        (self.root / "cluster.json").write_text(json.dumps(state, indent=2))

    def down(self) -> None:
        for proc in [*self.serves, *([self.haproxy] if self.haproxy else [])]:
            proc.terminate()
        for proc in [*self.serves, *([self.haproxy] if self.haproxy else [])]:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.serves.clear()
        self.haproxy = None
        if self.token is not None:
            self.token.stop()
        if self.pg is not None:
            self.pg.stop()


def down_from_state(root: Path) -> None:
    """Stop what a ``up`` in another process left running (``make cluster-stop``)."""
    state_file = root / "cluster.json"
    if not state_file.exists():
        print(f"no cluster in {root}")
        return
    state = json.loads(state_file.read_text())
    for pid in state["pids"]:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    if state["pg_root"]:
        Postgres(Path(state["pg_root"])).stop()
    state_file.unlink()
    print(f"cluster in {root} stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.cluster")
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--dir", default="var/cluster")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--front-port", type=int, default=8440)
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    args = parser.parse_args(argv)
    root = Path(args.dir).resolve()
    if args.action == "down":
        down_from_state(root)
        return 0
    down_from_state(root) if (root / "cluster.json").exists() else None
    cluster = Cluster(root, replicas=args.replicas, front_port=args.front_port,
                      database=args.database)
    try:
        cluster.up()
        front = f"http://127.0.0.1:{cluster.front_port}"
        print(f"""eseal cluster up in {root}
  front (HAProxy, round robin): {front}   try: curl {front}/healthz
  replicas (eseal serve):       {' '.join(cluster.urls)}
  database:                     {cluster.database_url}
  CA token (p11-kit server):    {cluster.token.address if cluster.token else ''}
  CA home (token files, PIN):   {cluster.ca_home}
  first officer's USB-Key PIN:  {cluster.officer_pin}
  state for the load driver:    {root / 'cluster.json'}
Ctrl-C (or `make cluster-stop` from another shell) tears it down.""", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        while all(p.poll() is None for p in cluster.serves):
            time.sleep(1)
        print("a replica exited; tearing down", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ntearing the cluster down")
        return 0
    finally:
        cluster.down()
        with contextlib.suppress(FileNotFoundError):
            (root / "cluster.json").unlink()


if __name__ == "__main__":
    sys.exit(main())
