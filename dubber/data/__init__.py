"""Training and evaluation data: ``dub prep`` (clips -> a cache of crops, landmarks and mel) and its reader."""

from dubber.data.cache import ClipTrack, PrepCache
from dubber.data.prep import PrepSummary, prepare_dataset
from dubber.data.prep_clip import ClipRecord, PrepOptions, prepare_clip
from dubber.data.sources import ClipSource, read_sources

__all__ = [
    "ClipRecord",
    "ClipSource",
    "ClipTrack",
    "PrepCache",
    "PrepOptions",
    "PrepSummary",
    "prepare_clip",
    "prepare_dataset",
    "read_sources",
]
