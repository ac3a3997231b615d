"""`start --foreground`, inside the server: its logging, then the runtime around the start
handler (or, for a stdio server, the bare server for its one client).

A failure before the runtime exists still reaches a waiting detached `start`, with its own
exit code and message, through the readiness pipe it handed over.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from mcp_lifecycle.errors import LifecycleError, os_error
from mcp_lifecycle.files import kernel
from mcp_lifecycle.files.paths import ServerPaths
from mcp_lifecycle.files.private import ensure_cache_root
from mcp_lifecycle.handoff import Handed, ReadyPipe
from mcp_lifecycle.logs import configure_logging

if TYPE_CHECKING:
    from mcp_lifecycle.server.runtime import ServerRuntime
    from mcp_lifecycle.settings.model import MCPServerSettings

logger = logging.getLogger(__name__)


def run_foreground(
    load_settings: Callable[[], MCPServerSettings],
    start_handler: Callable[[], Callable[[], None]],
    handed: Handed,
    *,
    reload_handler: Callable[[MCPServerSettings], None] | None,
    ensure_startable: Callable[[ServerPaths, str], str | None],
) -> None:
    """Run the server in this process until it stops. `start_handler()` gives the handler (or
    raises ConfigurationError); `ensure_startable(paths, stale_pid_action)` refuses a running
    server and deals with a stale PID file, when no detached `start` did so already."""
    try:
        try:
            runtime = _prepare(
                load_settings, start_handler, handed, reload_handler, ensure_startable
            )
        except OSError as exc:
            raise os_error(exc) from exc
    except LifecycleError as exc:
        ReadyPipe(handed.ready_fd).send_failure(int(exc.exit_code), exc.message, exc.hint)
        raise
    runtime.run()


def _prepare(
    load_settings: Callable[[], MCPServerSettings],
    start_handler: Callable[[], Callable[[], None]],
    handed: Handed,
    reload_handler: Callable[[MCPServerSettings], None] | None,
    ensure_startable: Callable[[ServerPaths, str], str | None],
) -> ServerRuntime:
    from mcp_lifecycle.server.runtime import ServerRuntime

    settings = load_settings()
    handler = start_handler()
    if settings.transport == "stdio":
        _serve_stdio(settings, handler)
    configure_logging(
        settings.log_level,
        settings.log_file,
        settings.json_logs,
        max_bytes=settings.log_max_bytes,
        backup_count=settings.log_backup_count,
        server_name=settings.server_name,
        output_log=handed.log,
    )
    if handed.ready_fd is None and handed.supervisor is None:
        # A detached start already did this under the start lock.
        ensure_cache_root(settings.resolved_cache_root)
        note = ensure_startable(ServerPaths.for_settings(settings), settings.stale_pid_action)
        if note:
            logger.warning("%s", note)
    if handed.supervisor is None and _supervised(settings, handed):
        _become_supervisor(settings, handed)
    if handed.supervisor is not None:
        _die_with(handed.supervisor)
    return ServerRuntime(
        settings,
        handler,
        reload_settings=load_settings,
        reload_handler=reload_handler,
        ready_fd=handed.ready_fd,
        supervisor=handed.supervisor,
    )


def _supervised(settings: MCPServerSettings, handed: Handed) -> bool:
    if settings.restart_policy == "never" and not handed.watch:
        return False
    manager = (
        "systemd"
        if os.environ.get("NOTIFY_SOCKET")
        else "Kubernetes"
        if os.environ.get("KUBERNETES_SERVICE_HOST")
        else None
    )
    if manager is None:
        return True
    # Two supervisors would fight over every exit: the outer one restarts.
    logger.warning(
        "restart_policy %s is left to %s, which runs this server", settings.restart_policy, manager
    )
    return False


def _become_supervisor(settings: MCPServerSettings, handed: Handed) -> NoReturn:
    """Replace this process with the supervisor (the same PID, so a detached `start` waits on
    it): a small interpreter without the server's code, which runs the server as its child."""
    from mcp_lifecycle.files.registry import running_dir
    from mcp_lifecycle.handoff import READY_FD_ENV, this_cli, to_env
    from mcp_lifecycle.server.supervisor import SPEC_ENV, SupervisorSpec
    from mcp_lifecycle.settings.fields import LifecycleFields

    spec = SupervisorSpec(
        fields=LifecycleFields.of(settings).to_json(),
        policy=settings.restart_policy,
        max_retries=settings.restart_max_retries,
        window_seconds=settings.restart_window_seconds,
        backoff_seconds=settings.restart_backoff_seconds,
        command=this_cli(sys.argv[1:]),
        env=to_env(handed.flags, log=handed.log),
        max_memory_mb=settings.restart_max_memory_mb,
        watch=handed.watch or [],
        registry=str(running_dir()),
    )
    env = {
        **os.environ,
        SPEC_ENV: spec.to_json(),
        "MCP_LIFECYCLE_SUPERVISOR_LOG_LEVEL": settings.log_level,
    }
    if handed.ready_fd is not None:
        os.set_inheritable(handed.ready_fd, True)
        env[READY_FD_ENV] = str(handed.ready_fd)
    logger.info("supervising %s (restart_policy %s)", settings.server_name, spec.policy)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    command = [sys.executable, "-m", "mcp_lifecycle.server.supervisor"]
    os.execve(sys.executable, command, env)  # noqa: S606 - our interpreter, argv given whole


def _die_with(supervisor: int) -> None:
    """A server its supervisor runs must not outlive it: the kernel kills it when the
    supervisor dies (Linux); elsewhere its heartbeat notices the new parent."""
    import signal

    kernel.die_with_parent(signal.SIGKILL)
    if os.getppid() != supervisor:
        raise LifecycleError(f"the supervisor (PID {supervisor}) is gone; not starting")


def _serve_stdio(settings: MCPServerSettings, handler: Callable[[], None]) -> NoReturn:
    from mcp_lifecycle.server.runtime import run_unmanaged

    # stdout is the protocol channel: logs go to stderr only.
    configure_logging(settings.log_level, settings.log_file, settings.json_logs)
    code = 0
    try:
        run_unmanaged(handler)
    except LifecycleError as exc:
        sys.stderr.write(f"Error: {exc.message}\n")
        code = int(exc.exit_code)
    _leave(code)


def _leave(code: int) -> NoReturn:
    """End a stdio server now. The SDK reads stdin in a worker thread that a signal cannot
    wake; a normal exit would wait for it until the client closes the pipe."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)
