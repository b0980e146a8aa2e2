"""The learned models: the landmark completer (audio -> lip and jaw landmarks)."""

from dubber.models.landmark_completer import LandmarkCompleter, LandmarkCompleterConfig
from dubber.models.landmark_sequence import predict_sequence

__all__ = ["LandmarkCompleter", "LandmarkCompleterConfig", "predict_sequence"]
