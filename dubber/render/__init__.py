"""The renderer side of the method: the lower-face mask, the sampling pipeline around the TalkFormer UNet."""

from dubber.render.face_mask import lower_face_mask
from dubber.render.renderer_pipeline import FaceRenderer, make_scheduler

__all__ = ["FaceRenderer", "lower_face_mask", "make_scheduler"]
