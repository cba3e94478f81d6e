"""A real single-node SLURM for the tests: munged, slurmctld and slurmd started from the Debian
packages (`slurmctld slurmd slurm-client munge`) with their state in a temporary folder, and
stopped by the PIDs they wrote. No accounting daemon, as on many small clusters; finished jobs
are recorded in a job completion log, which the tests read to see what ran as a job.

The configuration goes where a cluster's lives, /etc/slurm/slurm.conf (removed again at the
end; an existing one, not ours, is never touched): SLURM_CONF alone does not reach the job
steps, as the SLURM plugin's job step drops every SLURM_* variable but the job's identity."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
MARK = "# esforget test cluster\n"
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel")


def missing_binaries() -> list[str]:
    found = {name: shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin") for name in DAEMONS + CLIENTS}
    return [name for name, path in found.items() if path is None]


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024 - 1024  # leave 1 GiB to the system
    raise RuntimeError("no MemTotal in /proc/meminfo")


def slurm_conf(root: Path, host: str, cpus: int, memory_mb: int, min_job_age_s: int) -> str:
    return f"""\
{MARK}ClusterName=esforget-test
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root}/munge.socket
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
JobCompType=jobcomp/filetxt
JobCompLoc={root}/jobcomp.log
MinJobAge={min_job_age_s}
ReturnToService=2
SchedulerType=sched/backfill
MpiDefault=none
NodeName={host} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


class Cluster:
    """A running single-node SLURM; `env` points clients (sbatch, squeue) at it."""

    def __init__(self, root: Path, min_job_age_s: int = 300):
        self.root = root
        self.host = socket.gethostname()
        for folder in ("state", "spool"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        self.conf = root / "slurm.conf"
        self.conf.write_text(slurm_conf(root, self.host, os.cpu_count() or 1, _memory_mb(), min_job_age_s))
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.pid_files = {name: root / f"{name}.pid" for name in DAEMONS}

    def can_install(self) -> str | None:
        """Why this cluster cannot be set up here, or None."""
        if SYSTEM_CONF.exists() and not SYSTEM_CONF.read_text().startswith(MARK):
            return f"{SYSTEM_CONF} holds a real cluster's configuration"
        if not os.access(SYSTEM_CONF.parent if SYSTEM_CONF.parent.exists() else "/etc", os.W_OK):
            return f"{SYSTEM_CONF.parent} is not writable (the daemons need root)"
        return None

    def start(self, timeout_s: float = 30) -> None:
        SYSTEM_CONF.parent.mkdir(exist_ok=True)
        shutil.copy(self.conf, SYSTEM_CONF)
        key = self.root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        munge = [
            "munged",
            f"--key-file={key}",
            f"--socket={self.root}/munge.socket",
            f"--pid-file={self.pid_files['munged']}",
            f"--log-file={self.root}/munged.log",
            f"--seed-file={self.root}/munged.seed",
            "--force",
        ]
        self._daemon(munge)
        self._daemon(["slurmctld", "-f", str(self.conf)])
        self._daemon(["slurmd", "-f", str(self.conf)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = self.run("sinfo", "--noheader", "--format=%T", check=False).stdout.strip()
            if state in ("idle", "mixed", "allocated"):
                return
            time.sleep(0.2)
        raise RuntimeError(f"the SLURM node did not come up (sinfo: {state!r}); see {self.root}/*.log")

    def _daemon(self, command: list[str]) -> None:
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed to start: {done.stderr}")

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(command, env=self.env, capture_output=True, text=True, check=check)

    def pids(self) -> dict[str, int]:
        return {name: int(f.read_text()) for name, f in self.pid_files.items() if f.exists()}

    def alive(self) -> list[str]:
        """The daemons of this cluster still running."""
        return [name for name, pid in self.pids().items() if _alive(pid)]

    def stop(self) -> None:
        """Cancel what is left, then stop each daemon this cluster started, by its PID."""
        self.run("scancel", "--full", "--user", "root", check=False)
        for name in reversed(DAEMONS):
            pid = self.pids().get(name)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.1)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if SYSTEM_CONF.exists() and SYSTEM_CONF.read_text().startswith(MARK):
            SYSTEM_CONF.unlink()

    def completed_jobs(self) -> list[dict[str, str]]:
        """The job completion log: one dict per finished job (JobId, Name, JobState, ...)."""
        log = self.root / "jobcomp.log"
        if not log.exists():
            return []
        return [
            dict(field.split("=", 1) for field in line.split() if "=" in field) for line in log.read_text().splitlines()
        ]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped) counts as stopped
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"
