"""A throw-away single-node SLURM for tests: install (apt), configure in a temp dir, start and stop the daemons.

Everything the cluster writes (config, munge key and socket, state, spool, logs, pid files) lives under one
directory, on ports picked free at start, so it never touches an existing SLURM/munge setup of the machine.
The daemons run in the foreground as our own child processes and are stopped by PID. Needs root (slurmd must
be able to start jobs as the submitting user) and, if SLURM is not installed yet, apt.

    with SlurmCluster(tmp_path / "slurm") as cluster:
        subprocess.run(["sbatch", "--wrap", "hostname"], env=cluster.env(), check=True)
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

APT_PACKAGES = ("slurm-wlm", "munge")
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "srun")
# Debian installs munged and the slurm daemons under /usr/sbin, which is not on every PATH.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin"])
PARTITION = "local"
NODE = "localhost"
# snakemake-executor-plugin-slurm-jobstep 0.6.1 strips every SLURM_* variable except the job's identity before it
# calls `srun` inside a job, SLURM_CONF included, so srun only finds a config at the compiled-in default path.
# The test cluster therefore links its slurm.conf there for its lifetime (only where no config exists).
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")


class SlurmUnavailable(RuntimeError):
    """SLURM cannot be provided here (not root, no apt, install failed); the message says why and what to do."""


def which(name: str) -> str | None:
    return shutil.which(name, path=SEARCH_PATH)


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if which(b) is None]


def install(timeout: float = 900) -> float:
    """Install ``slurm-wlm`` and ``munge`` with apt if any binary is missing; returns the seconds it took (0 if none).

    Package scripts are kept from starting the distribution's own munge/slurm services (a temporary
    ``policy-rc.d``): the tests start their own daemons with their own config.
    """
    if not missing_binaries():
        return 0.0
    if os.geteuid() != 0:
        raise SlurmUnavailable(f"SLURM binaries missing ({', '.join(missing_binaries())}) and not root: cannot apt-get")
    if shutil.which("apt-get") is None:
        raise SlurmUnavailable(f"SLURM binaries missing ({', '.join(missing_binaries())}) and no apt-get here")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    start = time.monotonic()
    policy = Path("/usr/sbin/policy-rc.d")
    own_policy = not policy.exists()
    if own_policy:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        for cmd in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *APT_PACKAGES],
        ):
            left = timeout - (time.monotonic() - start)
            try:
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=max(left, 1))
            except subprocess.TimeoutExpired as exc:
                raise SlurmUnavailable(f"`{' '.join(cmd)}` did not finish within {timeout:.0f} s") from exc
            if proc.returncode != 0:
                raise SlurmUnavailable(f"`{' '.join(cmd)}` failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    finally:
        if own_policy:
            policy.unlink(missing_ok=True)
    if missing_binaries():
        raise SlurmUnavailable(f"installed {APT_PACKAGES} but still missing: {', '.join(missing_binaries())}")
    return time.monotonic() - start


def node_hardware() -> dict[str, int]:
    """This node as slurmd sees it (``slurmd -C``): CPUs, sockets/cores/threads, RealMemory in MB.

    Using slurmd's own numbers means the node never gets drained for claiming more than it has.
    """
    out = subprocess.run([which("slurmd") or "slurmd", "-C"], capture_output=True, text=True, timeout=60).stdout
    keys = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory")
    found = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", out) if k in keys}
    if "CPUs" not in found or "RealMemory" not in found:  # fall back to the kernel's view
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        found = {"CPUs": os.cpu_count() or 1, "RealMemory": pages // 2**20}
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no file)"


@dataclass
class SlurmCluster:
    """One controller + one compute node (this machine) in partition ``local``; see the module docstring."""

    root: Path
    start_timeout: float = 120.0
    link_system_conf: bool = True
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    linked: bool = False

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket.2"

    # ---------------------------------------------------------------- configuration
    def write_config(self) -> Path:
        for sub in ("munge", "state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root / "munge", 0o700)
        key = self.root / "munge" / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
            key.chmod(0o400)
        hw = node_hardware()
        node = " ".join(f"{k}={v}" for k, v in hw.items())
        host = socket.gethostname().split(".")[0]
        r = self.root
        self.conf.write_text(
            "\n".join(
                [
                    "# Generated by tests/slurm_cluster.py: single-node test cluster, accounting off.",
                    "ClusterName=animefaces-test",
                    f"SlurmctldHost={host}(127.0.0.1)",
                    f"SlurmctldPort={free_port()}",
                    f"SlurmdPort={free_port()}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"AuthInfo=socket={self.munge_socket}",
                    f"StateSaveLocation={r / 'state'}",
                    f"SlurmdSpoolDir={r / 'spool'}",
                    f"SlurmctldPidFile={r / 'slurmctld.pid'}",
                    f"SlurmdPidFile={r / 'slurmd.pid'}",
                    f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
                    f"SlurmdLogFile={r / 'log' / 'slurmd.log'}",
                    "SlurmctldDebug=info",
                    "SlurmdDebug=info",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "SwitchType=switch/none",
                    "MpiDefault=none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core_Memory",
                    "SchedulerType=sched/backfill",
                    "AccountingStorageType=accounting_storage/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "JobCompType=jobcomp/none",
                    # finished jobs stay visible to squeue/scontrol for 5 min (the plugin polls squeue)
                    "MinJobAge=300",
                    "ReturnToService=2",
                    "SlurmdTimeout=120",
                    "InactiveLimit=0",
                    "KillWait=5",
                    f"NodeName={NODE} NodeAddr=127.0.0.1 {node} State=UNKNOWN",
                    f"PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )
        return self.conf

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for SLURM clients (sbatch, squeue, snakemake's plugin): points at our slurm.conf."""
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = SEARCH_PATH
        return env

    # ---------------------------------------------------------------- daemons
    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.stdout", "ab")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env(), start_new_session=True
        )
        log.close()

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise SlurmUnavailable(
                    f"{name} exited with {proc.returncode} while starting the test cluster:\n" + self.diagnostics()
                )

    def start(self) -> SlurmCluster:
        if os.geteuid() != 0:
            raise SlurmUnavailable("a test SLURM cluster needs root (slurmd runs jobs as the submitting user)")
        if missing_binaries():
            raise SlurmUnavailable(f"missing SLURM binaries: {', '.join(missing_binaries())} (call install())")
        self.write_config()
        if self.link_system_conf:
            self._link_system_conf()
        m = self.root / "munge"
        self._spawn(
            "munged",
            [
                which("munged"),
                "--foreground",
                "--force",
                f"--key-file={m / 'munge.key'}",
                f"--socket={self.munge_socket}",
                f"--pid-file={m / 'munged.pid'}",
                f"--log-file={self.root / 'log' / 'munged.log'}",
                f"--seed-file={m / 'munged.seed'}",
            ],
        )
        self._wait(lambda: self.munge_socket.exists(), "munged socket", 30)
        self._spawn("slurmctld", [which("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        self._wait(lambda: self._client(["scontrol", "ping"]).returncode == 0, "slurmctld to answer ping", 60)
        self._spawn("slurmd", [which("slurmd"), "-D", "-f", str(self.conf), "-N", NODE])
        self.wait_idle()
        return self

    def _link_system_conf(self) -> None:
        if SYSTEM_CONF.is_symlink() and not SYSTEM_CONF.exists():
            SYSTEM_CONF.unlink()  # dangling link left by a killed test run
        if SYSTEM_CONF.exists() or SYSTEM_CONF.is_symlink():
            raise SlurmUnavailable(
                f"{SYSTEM_CONF} already exists (a real SLURM setup?). Jobs of the test cluster would read it: "
                "snakemake's slurm-jobstep plugin drops SLURM_CONF before calling srun. Run this test on a "
                "machine without a SLURM config."
            )
        SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
        SYSTEM_CONF.symlink_to(self.conf)
        self.linked = True

    def _client(self, cmd: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, env=self.env(), timeout=timeout)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(cmd, 124, "", f"timed out after {timeout} s")

    def _wait(self, ready, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            if ready():
                return
            time.sleep(0.5)
        raise SlurmUnavailable(f"timed out after {timeout:.0f} s waiting for {what}:\n" + self.diagnostics())

    def node_state(self) -> str:
        out = self._client(["sinfo", "-h", "-N", "-n", NODE, "-o", "%T"]).stdout.strip()
        return out.lower()

    def wait_idle(self, timeout: float | None = None) -> None:
        self._wait(lambda: self.node_state() == "idle", f"node {NODE} to be idle", timeout or self.start_timeout)

    def diagnostics(self) -> str:
        parts = [f"sinfo: {self._client(['sinfo', '-N', '-l']).stdout.strip()}"]
        for name in ("munged.log", "slurmctld.log", "slurmd.log", "slurmctld.stdout", "slurmd.stdout"):
            parts.append(f"--- {name}:\n{_tail(self.root / 'log' / name)}")
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop our daemons by PID (slurmd first, munged last): SIGTERM, then SIGKILL after 15 s."""
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)
        if self.linked and SYSTEM_CONF.is_symlink() and SYSTEM_CONF.readlink() == self.conf:
            SYSTEM_CONF.unlink()
        self.linked = False

    def __enter__(self) -> SlurmCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---------------------------------------------------------------- inspection
    def job(self, job_id: str | int) -> dict[str, str]:
        """``scontrol show job -o <id>`` as a dict (JobState, JobName, Partition, NodeList, Command, ...)."""
        out = self._client(["scontrol", "show", "job", "-o", str(job_id)]).stdout
        return dict(re.findall(r"(\w+)=(\S*)", out))

    def submitted_job_ids(self) -> list[str]:
        """Job ids the controller accepted, from its log (independent of what the client side claims)."""
        text = (self.root / "log" / "slurmctld.log").read_text(errors="replace")
        return re.findall(r"_slurm_rpc_submit_batch_job: JobId=(\d+)", text)
