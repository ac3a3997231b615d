"""Benchmark of the fleet commands on this machine: `python bench/fleet.py [--runs N]`.

Measures the fleet's targets (issue 14) with real processes: `up` of 10 servers (5 HTTP, 5
bridged stdio) against the slowest one's own start; `status` over 100 declared servers against
the status of one; and what the stdio bridge adds to a tool call, beside the SDK's direct stdio
client and FastMCP's proxy. Prints medians in a markdown table, then PASS/FAIL per target.
Everything runs in a private temporary folder (XDG_STATE_HOME); every server it starts is
stopped (`mcp-lifecycle down`, then a sweep for any process left with our state folder).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from run import compile_sources

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = sys.executable
CLI = str(Path(PY).parent / "mcp-lifecycle")
HTTP_SERVER = ROOT / "tests" / "foreign" / "http_server.py"
STDIO_SERVER = ROOT / "tests" / "foreign" / "stdio_server.py"
MIB = 2**20
# What one running fleet member costs (its process and its command's), until we measured it.
ASSUMED_SERVER_BYTES = 160 * MIB
STATUS_MAX_RUNNING = 15
WARM_CALLS = 5
TIMED_CALLS = 50


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.1 else f"{seconds * 1000:.1f} ms"


def mib(count: float) -> str:
    return f"{count / MIB:.1f} MiB"


class FleetBench:
    def __init__(self, runs: int, work: Path) -> None:
        self.runs = runs
        self.work = work
        self.state = work / "state"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_SERVER_")}
        self.env.update(XDG_STATE_HOME=str(self.state), XDG_CACHE_HOME=str(work / "cache"))
        self.files: list[Path] = []  # every fleet file written: `down` over each at the end
        self.spawned: list[subprocess.Popen[bytes]] = []
        self.rows: list[tuple[str, str, str]] = []
        self.checks: list[tuple[str, bool, str]] = []
        self.problems: list[str] = []
        self.server_bytes: list[int] = []  # RSS of each running member (process + command)

    # -- running the tool ---------------------------------------------------------------------

    def cli(
        self, *args: str, file: Path | None = None, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        cmd = [CLI, *(["--file", str(file)] if file else []), *args]
        return subprocess.run(
            cmd,
            env=self.env,
            cwd=self.work,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )

    def timed_cli(
        self, *args: str, file: Path | None = None
    ) -> tuple[float, float, subprocess.CompletedProcess[str]]:
        """Wall time and CPU time (user + system) of one run of the tool."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        result = self.cli(*args, file=file)
        wall = time.perf_counter() - began
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return wall, cpu, result

    def median_cli(self, *args: str, file: Path | None = None, runs: int | None = None) -> float:
        self.cli(*args, file=file)  # warm: page cache, settings cache
        samples = []
        for _ in range(runs or self.runs):
            wall, _, _ = self.timed_cli(*args, file=file)
            samples.append(wall)
        return statistics.median(samples)

    def must(self, what: str, result: subprocess.CompletedProcess[str]) -> None:
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip()
            raise RuntimeError(f"{what} failed (exit {result.returncode}):\n{detail}")

    def status_json(self, file: Path, *names: str) -> list[dict[str, Any]]:
        result = self.cli("status", *names, "--json", file=file)
        data = json.loads(result.stdout)
        return data if isinstance(data, list) else [data]

    def fleet_file(self, name: str, servers: dict[str, dict[str, Any]]) -> Path:
        path = self.work / name
        import yaml

        path.write_text(yaml.safe_dump({"servers": servers}, sort_keys=False))
        self.files.append(path)
        return path

    # -- reporting ------------------------------------------------------------------------------

    def record(self, name: str, value: str, note: str = "") -> None:
        self.rows.append((name, value, note))

    def check(self, target: str, ok: bool, detail: str) -> None:
        self.checks.append((target, ok, detail))

    def problem(self, text: str) -> None:
        self.problems.append(text)

    # -- cleaning up ----------------------------------------------------------------------------

    def cleanup(self) -> None:
        for path in self.files:
            with contextlib.suppress(subprocess.TimeoutExpired):
                result = self.cli("down", "--timeout", "10", file=path, timeout=120)
                if result.returncode != 0:
                    self.problem(f"`down` over {path.name} exited {result.returncode}")
        for proc in self.spawned:
            stop_tree(proc)
        leftovers = [p for p in psutil.process_iter() if self._ours(p)]
        if leftovers:
            listed = ", ".join(f"{p.pid} {' '.join(p.cmdline()[-2:])}" for p in leftovers)
            self.problem(f"processes left after `down`: {listed} (killed now)")
            for leftover in leftovers:
                with contextlib.suppress(psutil.Error):
                    leftover.kill()
            psutil.wait_procs(leftovers, timeout=5)
        self.check("every process stopped by `down`", not leftovers, f"{len(leftovers)} left")

    def _ours(self, proc: psutil.Process) -> bool:
        """A process that runs with our private state folder: one we started, or one of its
        descendants."""
        if proc.pid == os.getpid():
            return False
        with contextlib.suppress(psutil.Error):
            return bool(proc.environ().get("XDG_STATE_HOME") == str(self.state))
        return False


def stop_tree(proc: subprocess.Popen[bytes]) -> None:
    """terminate + wait for a process we spawned, and anything it left behind."""
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        children = []
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    psutil.wait_procs(children, timeout=5)


def cpu_seconds(proc: psutil.Process) -> float:
    with contextlib.suppress(psutil.Error):
        times = proc.cpu_times()
        return float(times.user + times.system)
    return 0.0


def tree_cpu(pid: int) -> tuple[float, float]:
    """CPU time so far of a member's own process, and of everything under it (its command)."""
    root = psutil.Process(pid)
    return cpu_seconds(root), sum(cpu_seconds(child) for child in root.children(recursive=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per median (default 3)")
    parser.add_argument("--fastmcp-proxy", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fastmcp_proxy:
        serve_fastmcp_proxy(args.fastmcp_proxy)
        return 0
    compile_sources()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mcp-lifecycle-fleet-bench-") as tmp:
        bench = FleetBench(args.runs, Path(tmp))
        try:
            for part in (measure_up, measure_status, measure_bridge, measure_imports):
                try:
                    part(bench)
                except Exception as exc:  # one part failing is reported; the others run
                    bench.problem(f"{part.__name__}: {type(exc).__name__}: {exc}")
                    bench.check(f"{part.__name__} completed", False, str(exc).splitlines()[0])
        finally:
            bench.cleanup()
    bench.record("load average (1 min) at the end", f"{os.getloadavg()[0]:.2f}")
    report(bench, time.monotonic() - began)
    return 0 if all(ok for _, ok, _ in bench.checks) else 1


# -- 1. up of 10 servers ---------------------------------------------------------------------------


def ten_servers() -> dict[str, dict[str, Any]]:
    servers: dict[str, dict[str, Any]] = {}
    for index in range(1, 6):
        port = free_port()
        servers[f"http-{index}"] = {
            "command": [PY, str(HTTP_SERVER), str(port)],
            "url": f"http://127.0.0.1:{port}/mcp",
        }
    for index in range(1, 6):
        servers[f"stdio-{index}"] = {"command": [PY, str(STDIO_SERVER)], "transport": "stdio"}
    return servers


@dataclass
class UpSamples:
    singles: dict[str, list[float]]  # `up NAME` alone, wall time, per server
    start_cpu: dict[str, list[float]] = field(default_factory=lambda: {"http": [], "stdio": []})
    # The part of it spent by our own processes: the CLI and the member's server process.
    our_cpu: dict[str, list[float]] = field(default_factory=lambda: {"http": [], "stdio": []})
    fleet: list[float] = field(default_factory=list)  # `up` of all 10, wall time
    fleet_cli_cpu: list[float] = field(default_factory=list)
    downs: list[float] = field(default_factory=list)
    single_downs: dict[str, list[float]] = field(default_factory=lambda: {"http": [], "stdio": []})


def measure_up(b: FleetBench) -> None:
    cores = os.cpu_count() or 1
    available = psutil.virtual_memory().available
    b.record("CPU cores (os.cpu_count)", str(cores))
    b.record("memory available at the start", mib(available))
    b.record("load average (1 min) at the start", f"{os.getloadavg()[0]:.2f}", "others' work too")
    if available < 10 * ASSUMED_SERVER_BYTES * 2:
        raise RuntimeError(f"only {mib(available)} available: too little to run 10 servers")
    servers = ten_servers()
    file = b.fleet_file("fleet-10.yaml", servers)
    for name in ("http-1", "stdio-1"):  # warm: page cache, .pyc files, settings cache
        b.must(f"up {name} (warm-up)", b.cli("up", name, file=file))
        b.must(f"down {name} (warm-up)", b.cli("down", name, file=file))
    samples = UpSamples({name: [] for name in servers})
    for _ in range(b.runs):
        up_round(b, file, samples)
    report_up(b, samples, cores)


def up_round(b: FleetBench, file: Path, samples: UpSamples) -> None:
    """Each server alone (`up NAME`, then `down NAME`), then all 10 at once."""
    for name, times in samples.singles.items():
        wall, cli_cpu, result = b.timed_cli("up", name, file=file)
        b.must(f"up {name}", result)
        times.append(wall)
        (row,) = b.status_json(file, name)
        kind = name.split("-")[0]
        ours, command = tree_cpu(int(row["pid"]))
        samples.start_cpu[kind].append(cli_cpu + ours + command)
        samples.our_cpu[kind].append(cli_cpu + ours)
        wall, _, result = b.timed_cli("down", name, file=file)
        b.must(f"down {name}", result)
        samples.single_downs[kind].append(wall)
    wall, cli_cpu, result = b.timed_cli("up", file=file)
    b.must("up (10 servers)", result)
    samples.fleet.append(wall)
    samples.fleet_cli_cpu.append(cli_cpu)
    rows = b.status_json(file)
    not_ready = [r["server"] for r in rows if r.get("state") != "ready"]
    if not_ready:
        b.problem(f"after `up` returned, not ready: {', '.join(not_ready)}")
    b.server_bytes.extend(int(r["rss_bytes"]) for r in rows if r.get("rss_bytes"))
    wall, _, result = b.timed_cli("down", file=file)
    b.must("down (10 servers)", result)
    samples.downs.append(wall)


def report_up(b: FleetBench, samples: UpSamples, cores: int) -> None:
    own = {name: statistics.median(times) for name, times in samples.singles.items()}
    slowest = max(own, key=own.__getitem__)
    fleet = statistics.median(samples.fleet)
    http_own = statistics.median(v for n, v in own.items() if n.startswith("http"))
    stdio_own = statistics.median(v for n, v in own.items() if n.startswith("stdio"))
    b.record("`up NAME` alone, HTTP server (median of the 5)", ms(http_own))
    b.record("`up NAME` alone, bridged stdio server (median of the 5)", ms(stdio_own))
    b.record("`up NAME` alone, the slowest one", ms(own[slowest]), slowest)
    b.record("`up` of all 10 (5 HTTP + 5 stdio)", ms(fleet), "wall time of the CLI")
    b.record("`down NAME` alone, HTTP server", ms(statistics.median(samples.single_downs["http"])))
    b.record(
        "`down NAME` alone, bridged stdio server",
        ms(statistics.median(samples.single_downs["stdio"])),
    )
    b.record("`down` of all 10", ms(statistics.median(samples.downs)))
    http_cpu = statistics.median(samples.start_cpu["http"])
    stdio_cpu = statistics.median(samples.start_cpu["stdio"])
    for kind, label, total in (
        ("http", "HTTP server", http_cpu),
        ("stdio", "bridged stdio server", stdio_cpu),
    ):
        ours = statistics.median(samples.our_cpu[kind])
        b.record(
            f"CPU to start one {label}",
            f"{total:.2f} s",
            f"user + system; ours (CLI + member process) {ours:.2f} s, its command "
            f"{total - ours:.2f} s",
        )
    floor = (5 * http_cpu + 5 * stdio_cpu) / cores
    b.record(
        f"CPU floor for 10 starts on {cores} cores",
        ms(floor),
        "the CPU of 10 starts / cores: no parallel `up` can be faster",
    )
    b.record(
        "`up` of 10: CPU of the CLI itself", f"{statistics.median(samples.fleet_cli_cpu):.2f} s"
    )
    limit = 1.5 * own[slowest]
    few = ""
    if cores < 8:
        few = (
            f"; few cores ({cores}): the 10 starts need {ms(floor)} of CPU per core, "
            f"{floor / own[slowest]:.2f}x one start, before any waiting"
        )
    b.check(
        "up of 10 within 1.5x the slowest one's own start",
        fleet <= limit,
        f"{ms(fleet)} vs 1.5 x {ms(own[slowest])} = {ms(limit)} ({fleet / own[slowest]:.2f}x)"
        + few,
    )


# -- 2. status over 100 declared servers -----------------------------------------------------------


def measure_status(b: FleetBench) -> None:
    available = psutil.virtual_memory().available
    per_server = max(b.server_bytes) if b.server_bytes else ASSUMED_SERVER_BYTES
    fits = int(available * 0.5 // (per_server * 1.25))
    running = max(1, min(STATUS_MAX_RUNNING, fits))
    servers: dict[str, dict[str, Any]] = {}
    for index in range(100):
        if index % 2 == 0:
            port = free_port()
            servers[f"st-{index:03d}"] = {
                "command": [PY, str(HTTP_SERVER), str(port)],
                "url": f"http://127.0.0.1:{port}/mcp",
            }
        else:
            servers[f"st-{index:03d}"] = {
                "command": [PY, str(STDIO_SERVER)],
                "transport": "stdio",
            }
    names = list(servers)
    file = b.fleet_file("fleet-100.yaml", servers)
    one_file = b.fleet_file("fleet-1.yaml", {names[0]: servers[names[0]]})
    b.must(f"up of {running} of the 100", b.cli("up", *names[:running], file=file))
    rows = b.status_json(file)
    ready = sum(1 for row in rows if row.get("state") == "ready")
    b.record(
        "servers declared / running for `status`",
        f"100 / {ready}",
        f"{mib(available)} available, {mib(per_server)} a server: at most {STATUS_MAX_RUNNING} run",
    )
    if len(rows) != 100 or ready != running:
        b.problem(f"status --json over 100: {len(rows)} rows, {ready} ready (ran {running})")
    exit_code = b.cli("status", file=file).returncode
    if exit_code != 2:
        b.problem(f"status over 100 (most not running) exited {exit_code}, not 2")

    every = b.median_cli("status", file=file)
    every_json = b.median_cli("status", "--json", file=file)
    one_named = b.median_cli("status", names[0], file=file)
    one = b.median_cli("status", file=one_file)
    stopped_named = b.median_cli("status", names[-1], file=file)
    b.record(f"`status` over the 100 ({ready} running)", ms(every), "wall time of the CLI")
    b.record("`status --json` over the same 100", ms(every_json))
    b.record(f"`status {names[0]}` (running) with the 100 declared", ms(one_named), "baseline")
    b.record(f"`status` with a fleet file of only {names[0]}", ms(one), "stricter baseline")
    b.record(f"`status {names[-1]}` (not running) with the 100 declared", ms(stopped_named))
    cached = b.work / "cache" / "mcp-lifecycle" / "settings"
    entries = len(list(cached.glob("*.json"))) if cached.is_dir() else 0
    b.record("settings cache entries after these runs", str(entries), "one per member resolved")
    b.check(
        "status over 100 within 2x `status ONE`",
        every <= 2 * one_named,
        f"{ms(every)} vs 2 x {ms(one_named)} = {ms(2 * one_named)} ({every / one_named:.2f}x; "
        f"{ready} of the 100 running)",
    )
    b.check(
        "status over 100 within 2x `status` of a one-server fleet file",
        every <= 2 * one,
        f"{ms(every)} vs 2 x {ms(one)} = {ms(2 * one)} ({every / one:.2f}x)",
    )
    wall, _, result = b.timed_cli("down", file=file)
    b.must("down (status fleet)", result)
    b.record(f"`down` over the 100 ({ready} running)", ms(wall), "one run")


# -- 3. the stdio bridge's latency -----------------------------------------------------------------


def serve_fastmcp_proxy(port: int) -> None:
    """The comparison: FastMCP's proxy of the same stdio command, over Streamable HTTP."""
    import uvicorn
    from fastmcp.client.transports import StdioTransport
    from fastmcp.server import create_proxy

    proxy = create_proxy(StdioTransport(command=PY, args=[str(STDIO_SERVER)]), name="fastmcp-proxy")
    uvicorn.run(proxy.http_app(path="/mcp"), host="127.0.0.1", port=port, log_level="warning")


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the FastMCP proxy exited with {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"the FastMCP proxy did not listen on {port} within {timeout:g} s")


@contextlib.contextmanager
def fastmcp_proxy(b: FleetBench) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    log = (b.work / "fastmcp-proxy.log").open("wb")
    proc = subprocess.Popen(
        [PY, str(Path(__file__).resolve()), "--fastmcp-proxy", str(port)],
        env=b.env,
        cwd=b.work,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    b.spawned.append(proc)
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}/mcp", proc
    finally:
        stop_tree(proc)
        log.close()


async def session_latency(target: Any, token: str | None) -> tuple[float, list[float], float]:
    """Connect (the handshake's time), then `call_tool` WARM + TIMED times on that session, then
    close it (the time that takes)."""
    import mcp

    from mcp_lifecycle.transports.probe import connect

    began = time.perf_counter()
    session = (
        mcp.Client(target)
        if isinstance(target, mcp.StdioServerParameters)
        else connect(target, token)
    )
    async with session as client:
        connected = time.perf_counter() - began
        samples = []
        for index in range(WARM_CALLS + TIMED_CALLS):
            text = f"ping {index}"
            began = time.perf_counter()
            result = await client.call_tool("echo", {"text": text})
            elapsed = time.perf_counter() - began
            if result.is_error or getattr(result.content[0], "text", None) != text:
                raise RuntimeError(f"echo answered {result!r}")
            if index >= WARM_CALLS:
                samples.append(elapsed)
        began = time.perf_counter()
    return connected, samples, time.perf_counter() - began


def measure_bridge(b: FleetBench) -> None:
    import anyio
    import mcp

    bridged = {"command": [PY, str(STDIO_SERVER)], "transport": "stdio"}
    file = b.fleet_file("fleet-bridge.yaml", {"bridged": bridged})
    b.must("up bridged", b.cli("up", file=file))
    config_wall, _, config = b.timed_cli("client-config", "--json", file=file)
    b.must("client-config --json", config)
    entry = json.loads(config.stdout)["mcpServers"]["bridged"]
    url = entry["url"]
    header = entry.get("headers", {}).get("Authorization", "")
    if not header.startswith("Bearer "):
        b.problem(f"client-config gave the bridged server no bearer header: {entry}")
    token = header.removeprefix("Bearer ") or None
    b.record("`client-config --json` (1 running)", ms(config_wall), "one run")
    (row,) = b.status_json(file, "bridged")
    bridge_pid = int(row["pid"])

    direct = mcp.StdioServerParameters(command=PY, args=[str(STDIO_SERVER)])
    medians: dict[str, list[float]] = {"direct": [], "bridge": [], "fastmcp": []}
    p90s: dict[str, list[float]] = {key: [] for key in medians}
    connects: dict[str, list[float]] = {key: [] for key in medians}
    closes: dict[str, list[float]] = {key: [] for key in medians}
    with fastmcp_proxy(b) as (proxy_url, proxy):
        targets = {"direct": (direct, None), "bridge": (url, token), "fastmcp": (proxy_url, None)}
        for _ in range(b.runs):
            for key, (target, secret) in targets.items():
                connected, samples, closed = anyio.run(session_latency, target, secret)
                connects[key].append(connected)
                closes[key].append(closed)
                medians[key].append(statistics.median(samples))
                p90s[key].append(statistics.quantiles(samples, n=10)[-1])
        bridge_rss = psutil.Process(bridge_pid).memory_info().rss
        proxy_rss = psutil.Process(proxy.pid).memory_info().rss
        upstream = [p.memory_info().rss for p in psutil.Process(bridge_pid).children()]
    labels = {
        "direct": "stdio server direct (SDK `mcp.Client`, stdio)",
        "bridge": "through our bridge (Streamable HTTP + bearer)",
        "fastmcp": "through FastMCP's proxy (`create_proxy`, Streamable HTTP)",
    }
    median = {key: statistics.median(values) for key, values in medians.items()}
    for key, label in labels.items():
        b.record(
            f"`call_tool` {label}",
            ms(median[key]),
            f"p90 {ms(statistics.median(p90s[key]))}; "
            f"connect {ms(statistics.median(connects[key]))}; "
            f"close {ms(statistics.median(closes[key]))}",
        )
    added = median["bridge"] - median["direct"]
    added_fastmcp = median["fastmcp"] - median["direct"]
    b.record("latency the bridge adds to a call", ms(added))
    b.record("latency FastMCP's proxy adds to a call", ms(added_fastmcp))
    b.record("RSS of the bridge process", mib(bridge_rss), "without the stdio server")
    b.record("RSS of the FastMCP proxy process", mib(proxy_rss), "without the stdio server")
    if upstream:
        b.record("RSS of the stdio server itself", mib(upstream[0]), "for scale")
    b.check(
        "bridge adds no more latency than FastMCP's proxy (our comparison)",
        added <= added_fastmcp,
        f"+{ms(added)} vs +{ms(added_fastmcp)} a call ({TIMED_CALLS} calls, {b.runs} sessions)",
    )
    b.must("down bridged", b.cli("down", file=file))


def measure_imports(b: FleetBench) -> None:
    runs = max(5, b.runs)

    def timed(code: str) -> float:
        subprocess.run([PY, "-c", code], env=b.env, check=True)  # warm
        samples = []
        for _ in range(runs):
            began = time.perf_counter()
            subprocess.run([PY, "-c", code], env=b.env, check=True)
            samples.append(time.perf_counter() - began)
        return statistics.median(samples)

    floor = timed("pass")
    b.record("`python -c pass` (floor)", ms(floor))
    for label, code in (
        ("import mcp", "import mcp"),
        (
            "the bridge's SDK imports",
            "import uvicorn; from mcp import Client; from mcp.server.lowlevel import Server",
        ),
        ("import fastmcp", "import fastmcp"),
        ("FastMCP's proxy imports", "import uvicorn; from fastmcp.server import create_proxy"),
    ):
        wall = timed(code)
        b.record(f"`{label}` in a fresh interpreter", ms(wall - floor), "over the floor")


def report(b: FleetBench, elapsed: float) -> None:
    print("| measure | median | note |")
    print("|---|---|---|")
    for name, value, note in b.rows:
        print(f"| {name} | {value} | {note} |")
    print()
    for target, ok, detail in b.checks:
        print(f"[{'PASS' if ok else 'FAIL'}] {target}: {detail}")
    if b.problems:
        print("\nProblems seen:")
        for text in b.problems:
            print(f"- {text}")
    print(f"\n{b.runs} runs a median; {elapsed:.0f} s in all.")


if __name__ == "__main__":
    sys.exit(main())
