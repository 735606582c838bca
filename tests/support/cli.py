"""Run the real botlab CLI with the test-only stages, as a separate process:
`python -m tests.support.cli [botlab args...]`. Used by kill -9 and lock tests."""

from __future__ import annotations

import sys

from botlab.app import Environment
from botlab.cli import main
from tests.support.stages import lab_stages

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], Environment(stages=lab_stages)))
