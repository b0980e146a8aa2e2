"""Media I/O on PyAV: probing, streamed frame reading, audio decoding, atomic H.264 writing."""

from dubber.media.atomic import atomic_output
from dubber.media.audio import FEATURE_SAMPLE_RATE, AudioClip, decode_audio, write_wav
from dubber.media.audio_feed import AudioFromFile
from dubber.media.encode_options import AudioEncodeOptions, VideoEncodeOptions
from dubber.media.probe import AudioStreamInfo, MediaInfo, VideoStreamInfo, probe_media
from dubber.media.video_reader import Frame, VideoReader
from dubber.media.video_writer import VideoWriter

__all__ = [
    "FEATURE_SAMPLE_RATE",
    "AudioClip",
    "AudioEncodeOptions",
    "AudioFromFile",
    "AudioStreamInfo",
    "Frame",
    "MediaInfo",
    "VideoEncodeOptions",
    "VideoReader",
    "VideoStreamInfo",
    "VideoWriter",
    "atomic_output",
    "decode_audio",
    "write_wav",
    "probe_media",
]
