"""Run the real botlab CLI with the test-only stages, as a separate process:
`python -m tests.support.cli [botlab args...]`. Used by kill -9 and lock tests. The stages use
no MAAS, so the lab's lock across folders is the in-memory one (per process)."""

from __future__ import annotations

import sys

from botlab.app import Environment
from botlab.cli import main
from botlab.lablock import memory_lock
from tests.support.stages import lab_stages

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], Environment(stages=lab_stages, lab_lock=memory_lock)))
