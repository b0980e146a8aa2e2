"""The speech a dub's mouth follows: the new audio itself, or a speech stem beside it.

A finished dub's sound is often a mix: the new voice over music and effects. The mouth should follow the voice
alone (music under the speech lowers the plan's opening correlation with the mouth by 0.03-0.08, docs/DUBBING.md
"Music and effects under the speech"), while the output carries the mix. A stem shares the mix's timeline: it is
read from its start, on the mix's length, cut there or followed by silence.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dubber.audio.streaming import StreamedFeatures
from dubber.log import get_logger
from dubber.media.audio import decoded_seconds

log = get_logger("pipeline")

# A stem that ends this much before its mix is told at the default level: stems of one mix end together, so a
# longer gap is more likely the wrong file than a quiet ending.
STEM_SLACK = 1.0


def new_speech_features(
    features: Callable[..., StreamedFeatures], audio: Path, speech: Path | None
) -> StreamedFeatures:
    """``features(path, seconds=...)`` of the speech the mouth follows: ``audio``'s own, or ``speech``'s on
    ``audio``'s length, counted as the features count samples (a stem that is the audio itself changes nothing)."""
    if speech is None:
        return features(audio)
    seconds = decoded_seconds(audio)
    streamed = features(speech, seconds=seconds)
    if streamed.cut:
        log.warning("%s goes on past the %.2f s of %s: the rest is not followed", speech, seconds, audio)
    elif streamed.padded > 0:
        tell = log.warning if streamed.padded > STEM_SLACK else log.info
        tell("%s ends %.2f s before %s: the mouth rests to its end", speech, streamed.padded, audio)
    return streamed
