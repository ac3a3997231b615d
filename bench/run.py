"""Benchmark of mcp-lifecycle on this machine: `python bench/run.py [--runs N]`.

Prints medians of repeated runs, each beside the interpreter floor (`python -c pass`) measured
in the same run, and checks the performance targets (the README's Performance section).
Everything runs against real processes in private temporary folders; every server it starts
is stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = sys.executable
DEMO = [str(Path(PY).parent / "mcp-lifecycle-demo")]
IDLE = [PY, str(BENCH / "idle_server.py")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Bench:
    def __init__(self, runs: int, work: Path) -> None:
        self.runs = runs
        self.work = work
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_SERVER_")}
        self.env.update(
            XDG_STATE_HOME=str(work / "state"),
            XDG_CACHE_HOME=str(work / "cache"),
            MCP_SERVER_PORT=str(free_port()),
        )
        self.results: list[tuple[str, float, str]] = []
        self.checks: list[tuple[str, bool, str]] = []
        self.baselines: dict[str, float] = {}
        self.notes: list[str] = []

    def run(
        self, cmd: list[str], env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            cmd, env=env or self.env, cwd=self.work, capture_output=True, text=True, check=False
        )

    def timed(
        self, cmd: list[str], runs: int | None = None, env: dict[str, str] | None = None
    ) -> float:
        samples = []
        self.run(cmd, env)  # warm: page cache, settings cache, .pyc files
        for _ in range(runs or self.runs):
            began = time.perf_counter()
            self.run(cmd, env)
            samples.append(time.perf_counter() - began)
        return statistics.median(samples)

    def record(self, name: str, seconds: float, note: str = "") -> None:
        self.results.append((name, seconds, note))

    def check(self, target: str, ok: bool, detail: str) -> None:
        self.checks.append((target, ok, detail))

    def peak_rss_kib(self, cmd: list[str]) -> int:
        proc = subprocess.Popen(
            cmd, env=self.env, cwd=self.work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0
        return int(usage.ru_maxrss)


def snapshot(env: dict[str, str], name: str) -> dict[str, object]:
    root = Path(env["XDG_STATE_HOME"]) / "mcp-lifecycle" / name
    return dict(json.loads((root / "runtime_health.json").read_text()))


def exit_watcher(pid: int) -> Callable[[], float]:
    """When the process exits, by the monotonic clock (a pidfd wakes us at once)."""
    fd = os.pidfd_open(pid)
    seen: list[float] = []

    def wait() -> None:
        select.select([fd], [], [])
        seen.append(time.monotonic())
        os.close(fd)

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()

    def result() -> float:
        thread.join(timeout=30)
        return seen[0]

    return result


def compile_sources() -> None:
    """Compile once: where PYTHONDONTWRITEBYTECODE is set (as here), every timed run would
    compile the package again."""
    compile_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(
        [PY, "-m", "compileall", "-q", str(ROOT / "src"), str(BENCH)],
        env=compile_env,
        check=False,
        stdout=subprocess.DEVNULL,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per median (default 15)")
    parser.add_argument(
        "--hot",
        action="store_true",
        help="only the hot commands against the floor and the baselines (bench/typer_versions.sh "
        "runs this under the oldest and the newest Typer)",
    )
    args = parser.parse_args()
    compile_sources()
    with tempfile.TemporaryDirectory(prefix="mcp-lifecycle-bench-") as tmp:
        bench = Bench(args.runs, Path(tmp))
        try:
            measure(bench, hot_only=args.hot)
        finally:
            bench.run([*DEMO, "stop", "--timeout", "5"])
            bench.run([*IDLE, "stop", "--timeout", "5"])
    report(bench)
    return 0 if all(ok for _, ok, _ in bench.checks) else 1


def measure(b: Bench, hot_only: bool = False) -> None:
    import typer

    floor = b.timed([PY, "-c", "pass"])
    b.record("python -c pass (floor)", floor, f"Typer {typer.__version__} installed")

    status_stopped = b.timed([*DEMO, "status"])
    b.record("status (not running)", status_stopped)
    stop_decision = b.timed([*DEMO, "stop"])
    b.record("stop's decision (not running: exit 2)", stop_decision)
    naive = b.timed([PY, str(BENCH / "naive_cli.py"), "status"])
    b.record("naive Typer + pydantic-settings status", naive, "bench/naive_cli.py")
    b.baselines["naive"] = naive
    supervisorctl = measure_supervisorctl(b)
    if supervisorctl is not None:
        b.baselines["supervisorctl"] = supervisorctl
    hot_targets(b, "stop's decision", stop_decision, floor, naive)

    measure_running(b, floor, naive)
    if hot_only:
        b.run([*DEMO, "stop"])
        return
    measure_start_stop(b)
    measure_heartbeat(b)
    measure_registry(b)
    measure_supervisor(b)


def measure_running(b: Bench, floor: float, naive: float) -> None:
    started = b.run([*DEMO, "start"])
    assert started.returncode == 0, started.stderr
    status_running = b.timed([*DEMO, "status"])
    b.record("status (running)", status_running)
    hot_targets(b, "status", status_running, floor, naive)
    health = b.timed([*DEMO, "health"])
    b.record("health (from the snapshot)", health)
    hot_targets(b, "health", health, floor, naive)
    url = f"http://127.0.0.1:{b.env['MCP_SERVER_PORT']}/mcp"
    roundtrip = b.timed([PY, str(BENCH / "mcp_roundtrip.py"), url], runs=max(5, b.runs // 3))
    b.record("one MCP round trip in a fresh interpreter", roundtrip, "bench/mcp_roundtrip.py")
    probe = b.timed([*DEMO, "health", "--probe"], runs=max(5, b.runs // 3))
    b.record("health --probe", probe)
    b.check(
        "health --probe adds at most 100 ms to the MCP round trip",
        probe - roundtrip <= 0.1,
        f"+{(probe - roundtrip) * 1000:.0f} ms",
    )
    b.run([*DEMO, "stop"])
    rss = b.peak_rss_kib([*DEMO, "status"])
    b.record("status peak memory", rss / 1024, "MiB (not seconds)")


def hot_targets(b: Bench, name: str, seconds: float, floor: float, naive: float) -> None:
    b.check(f"{name} within 5x the floor", seconds <= 5 * floor, f"{seconds / floor:.1f}x")
    b.check(
        f"{name} at most a third of the naive baseline",
        seconds <= naive / 3,
        f"{seconds / naive:.2f} of it",
    )


def measure_supervisorctl(b: Bench) -> float | None:
    """`supervisorctl status` of one program, when supervisor is installed (it is not a
    dependency): the tool people compare a status command with."""
    import shutil

    supervisord, supervisorctl = shutil.which("supervisord"), shutil.which("supervisorctl")
    if supervisord is None or supervisorctl is None:
        b.notes.append("supervisorctl status: supervisor is not installed here, not measured")
        return None
    folder = b.work / "supervisor"
    folder.mkdir()
    conf = folder / "supervisord.conf"
    conf.write_text(
        f"[unix_http_server]\nfile={folder}/s.sock\n"
        f"[supervisord]\nlogfile={folder}/d.log\npidfile={folder}/d.pid\nnodaemon=false\n"
        "[rpcinterface:supervisor]\n"
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n"
        f"[supervisorctl]\nserverurl=unix://{folder}/s.sock\n"
        "[program:sleeper]\ncommand=sleep 600\n"
    )
    b.run([supervisord, "-c", str(conf)])
    try:
        seconds = b.timed([supervisorctl, "-c", str(conf), "status"])
    finally:
        b.run([supervisorctl, "-c", str(conf), "shutdown"])
    b.record("supervisorctl status", seconds, "supervisor's own status command")
    return seconds


def measure_start_stop(b: Bench) -> None:
    start_overheads, stop_overheads = [], []
    for _ in range(max(3, b.runs // 3)):
        result = b.run([*DEMO, "start"])
        returned = time.monotonic()
        assert result.returncode == 0, result.stderr
        ready_at = float(snapshot(b.env, "mcp-lifecycle-demo")["updated_monotonic"])  # type: ignore[arg-type]
        start_overheads.append(returned - ready_at)
        pid = int(json.loads(b.run([*DEMO, "status", "--json"]).stdout)["pid"])
        exited = exit_watcher(pid)
        b.run([*DEMO, "stop"])
        stop_overheads.append(time.monotonic() - exited())
    start_overhead = statistics.median(start_overheads)
    stop_overhead = statistics.median(stop_overheads)
    b.record("start: return after the server is ready", start_overhead)
    b.record("stop: return after the server exited", stop_overhead)
    b.check(
        "start returns within 150 ms of ready",
        start_overhead <= 0.15,
        f"{start_overhead * 1000:.0f} ms",
    )
    b.check(
        "stop returns within 100 ms of the exit",
        stop_overhead <= 0.1,
        f"{stop_overhead * 1000:.0f} ms",
    )


def measure_heartbeat(b: Bench) -> None:
    for heartbeat in ("1", None):
        env = dict(b.env)
        if heartbeat:
            env["MCP_SERVER_HEARTBEAT_SECONDS"] = heartbeat
        assert b.run([*IDLE, "start"], env).returncode == 0
        pid = int(json.loads(b.run([*IDLE, "status", "--json"], env).stdout)["pid"])
        proc = psutil.Process(pid)
        before, began = sum(proc.cpu_times()[:2]), time.monotonic()
        time.sleep(20)
        share = (sum(proc.cpu_times()[:2]) - before) / (time.monotonic() - began)
        b.run([*IDLE, "stop"], env)
        label = f"every {heartbeat} s" if heartbeat else "default, every 15 s"
        b.record(f"idle server CPU, heartbeat {label}", share * 100, "% of a core (not seconds)")
        if heartbeat is None:
            b.check("heartbeat under 0.1 % of a core", share < 0.001, f"{share * 100:.3f} %")


def measure_registry(b: Bench) -> None:
    for count in (1, 10, 100):
        registry = Path(b.env["XDG_STATE_HOME"]) / "mcp-lifecycle"
        for index in range(count):
            root = registry / f"other-{index}"
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
            (root / f"other-{index}.pid").write_text("999999\n")
            (root / f"other-{index}.lock").write_text("")
        b.record(f"status with {count} servers registered", b.timed([*DEMO, "status"]))


def measure_supervisor(b: Bench) -> None:
    """A supervised demo server: what the supervisor costs, and how soon a server killed with
    SIGKILL accepts work again (the backoff, 1 s by default, plus the server's own start)."""
    began = time.monotonic()
    assert b.run([*DEMO, "start"]).returncode == 0
    own_start = time.monotonic() - began
    b.run([*DEMO, "stop"])
    assert b.run([*DEMO, "start", "--restart", "on-failure"]).returncode == 0
    try:
        status = json.loads(b.run([*DEMO, "status", "--json"]).stdout)
        supervisor = psutil.Process(status["supervisor_pid"])
        time.sleep(2)
        rss = supervisor.memory_info().rss / 2**20
        before, began = sum(supervisor.cpu_times()[:2]), time.monotonic()
        time.sleep(10)
        share = (sum(supervisor.cpu_times()[:2]) - before) / (time.monotonic() - began)
        b.record("supervisor memory (RSS, idle)", rss, "MiB (not seconds)")
        b.record("supervisor CPU, idle", share * 100, "% of a core (not seconds)")
        b.check("supervisor under 15 MiB", rss < 15, f"{rss:.1f} MiB")
        b.check("supervisor CPU ~0 % idle", share < 0.005, f"{share * 100:.3f} %")
        os.kill(status["pid"], 9)
        killed = time.monotonic()
        while True:
            now = json.loads(b.run([*DEMO, "status", "--json"]).stdout)
            if now["pid"] != status["pid"] and now["state"] == "ready":
                break
            time.sleep(0.02)
        back = time.monotonic() - killed
        b.record("kill -9 to ready again (supervised)", back)
        b.record("a plain start, for comparison", own_start)
        b.check(
            "back within 1 s plus its own start",
            back <= 1.0 + own_start + 0.25,
            f"{back:.2f} s (start alone {own_start:.2f} s)",
        )
    finally:
        b.run([*DEMO, "stop"])


def report(b: Bench) -> None:
    floor = b.results[0][1]
    naive = b.baselines.get("naive")
    other = b.baselines.get("supervisorctl")
    print(f"{'measure':52} {'median':>10} {'x floor':>8} {'x naive':>8} {'x supctl':>8}")
    for name, value, note in b.results:
        if note.endswith("(not seconds)"):
            print(f"{name:52} {value:>10.3f} {'':>8} {'':>8} {'':>8}  {note}")
            continue
        ratios = [f"{value / base:>8.2f}" if base else f"{'-':>8}" for base in (naive, other)]
        print(f"{name:52} {value * 1000:>8.1f}ms {value / floor:>7.1f}x {' '.join(ratios)}  {note}")
    for note in b.notes:
        print(note)
    print()
    for target, ok, detail in b.checks:
        print(f"[{'PASS' if ok else 'FAIL'}] {target}: {detail}")


if __name__ == "__main__":
    sys.exit(main())
