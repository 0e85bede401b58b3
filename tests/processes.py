"""Launching several test processes on this host's CPU: a free port, and accelerate's launcher with the gloo backend."""

from __future__ import annotations

import os
import socket
import sys

from tests.paths import ROOT

CPU_ENV = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def accelerate_launch(num_machines: int = 1, port: int | None = None) -> list[str]:
    """``accelerate launch`` of 2 processes in all (one per machine when ``num_machines`` is 2), without a config
    file; the machines of a multi-machine job still need ``--machine_rank``."""
    machines = ["--num_machines", str(num_machines)]
    if num_machines > 1:
        machines += ["--main_process_ip", "127.0.0.1"]
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        *machines,
        "--main_process_port",
        str(port or free_port()),
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
    ]
