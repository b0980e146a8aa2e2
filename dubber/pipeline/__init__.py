"""The dub itself: analysis pass, timeline, landmark motion, rendering, compositing, writing."""

from dubber.media.dub_inputs import default_output
from dubber.pipeline.dubbing import DubbingPipeline, ProgressCallback
from dubber.pipeline.options import DubOptions, DubResult
from dubber.pipeline.timeline import FIT_MODES, Timeline

__all__ = ["FIT_MODES", "DubOptions", "DubResult", "DubbingPipeline", "ProgressCallback", "Timeline", "default_output"]
