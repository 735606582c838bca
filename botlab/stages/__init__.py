"""The lab's stages, one module each, in DESIGN's order. Stages hold policy and call
external systems only through botlab.drivers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from botlab.pipeline import Stage


def default_stages() -> Sequence[Stage]:
    """The stages this version implements; the runner orders them."""
    from botlab.stages.enlist import EnlistStage
    from botlab.stages.gpu import GpuStage
    from botlab.stages.kubernetes import KubernetesStage

    return [EnlistStage(), KubernetesStage(), GpuStage()]
