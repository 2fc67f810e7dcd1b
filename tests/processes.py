"""What the tests' own server processes (a Celery worker, gunicorn) share: their children, and a clean stop."""

import signal
import subprocess


def child_pids(process: subprocess.Popen) -> list[int]:
    """The processes a master started (a worker's pool, gunicorn's workers): the ones doing the work."""
    output = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(process.pid)], capture_output=True, text=True, check=False
    ).stdout
    return [int(pid) for pid in output.split()]


def stop(process: subprocess.Popen | None) -> None:
    """SIGTERM, as a deployment stops it; killed if it has not stopped 15 s later."""
    if process and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
