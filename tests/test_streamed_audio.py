"""Audio computed and written as it decodes: equal to the whole-clip computations, nothing held for the whole audio."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dubber.audio.features import AudioFeatures, audio_features
from dubber.audio.mel import log_mel
from dubber.audio.rows import RowStore, take_rows
from dubber.audio.speech import SpeechFeatures, encode_speech
from dubber.audio.streaming import MelStream, SpeechStream, stream_features
from dubber.audio.windows import frame_windows
from dubber.errors import NoAudioStreamError
from dubber.media import decode_audio, write_wav
from dubber.media.audio_feed import AudioSpan, SplicedAudio, make_audio_feed
from dubber.media.encode_options import AudioEncodeOptions
from dubber.media.splice_fades import fade_ramp, faded
from dubber.models.speech_encoder import SpeechEncoder, SpeechEncoderConfig


def _blocks(x: np.ndarray, size: int):
    return [x[i : i + size] for i in range(0, len(x), size)]


# Every length with every block size, but no thousands of one-sample pushes (the short clips cover those).
_MEL_CASES = [(n, b) for n in (0, 1, 199, 200, 401, 12345) for b in (1, 7, 200, 1000, 100_000) if n < 2000 or b >= 100]


@pytest.mark.parametrize(("n", "block"), _MEL_CASES)
def test_the_mel_stream_equals_the_whole_clip_mel(n, block):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    stream = MelStream()
    got = np.concatenate([stream.push(b) for b in _blocks(x, block)] + [stream.finish()])
    want = log_mel(x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("seconds", [1.0, 30.0, 50.0, 50.00002, 95.0])
def test_the_speech_stream_equals_the_chunked_encoder(seconds):
    """30 s chunks 20 s apart, one ending exactly at the audio's end (50 s), one sample more, several batches."""
    torch.manual_seed(0)
    encoder = SpeechEncoder(SpeechEncoderConfig.named("tiny-test")).eval()
    x = (0.1 * np.random.default_rng(1).standard_normal(int(round(seconds * 16000)))).astype(np.float32)
    want = encode_speech(x, encoder, layer=1).steps
    for block, batch in ((16_000, 2), (10**8, 4)):
        rows: list[np.ndarray] = []
        stream = SpeechStream(encoder, rows.append, layer=1, batch=batch)
        for b in _blocks(x, block):
            stream.push(b)
        stream.finish()
        got = np.concatenate(rows)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_rows_on_disk_read_back_by_span_and_are_deleted():
    data = np.random.default_rng(0).standard_normal((5000, 3)).astype(np.float32)
    store = RowStore(3)
    for part in np.array_split(data, 7):
        store.append(part)
    assert len(store) == 5000 and store.shape == (5000, 3)
    np.testing.assert_array_equal(store.rows(4090, 4100), data[4090:4100])
    np.testing.assert_array_equal(store.rows(-5, 3), data[:3])
    index = np.array([[4999, 10], [11, 12]])
    np.testing.assert_array_equal(take_rows(store, index), data[index])
    times = np.array([-0.3, 0.0, 1.7, 30.0, 62.4, 70.0])  # before, inside, across and after the end
    np.testing.assert_array_equal(frame_windows(store, times), frame_windows(data, times))
    assert SpeechFeatures(store).windows(times).tolist() == SpeechFeatures(data).windows(times).tolist()
    path = store.path
    assert path.exists()
    store.close()
    store.close()
    assert not path.exists()


def test_frame_windows_read_only_the_rows_they_cover():
    class Counting(RowStore):
        spans: list[tuple[int, int]] = []

        def rows(self, lo, hi):
            self.spans.append((lo, hi))
            return super().rows(lo, hi)

    with Counting(80) as store:
        store.append(np.zeros((80 * 600, 80), np.float32))  # ten minutes of mel
        frame_windows(store, np.arange(300, 308) / 25.0)
        ((lo, hi),) = store.spans
        assert hi - lo <= 8 * 80 / 25 + 16 + 1


@pytest.mark.parametrize("kind", ["mel", "speech", "mel+speech"])
def test_streamed_features_of_a_file_equal_the_whole_clip_ones(tmp_path, kind):
    torch.manual_seed(0)
    encoder = SpeechEncoder(SpeechEncoderConfig.named("tiny-test")).eval()
    rng = np.random.default_rng(2)
    wav = write_wav(tmp_path / "s.wav", (0.2 * rng.standard_normal(16000 * 33 + 77)).clip(-1, 1), 16000)
    streamed = stream_features(wav, kind, encoder, layer=1, folder=tmp_path)
    clip = decode_audio(wav)
    assert streamed.seconds == clip.duration
    times = np.arange(0, 33.2, 0.04)
    mel = AudioFeatures(audio_features(clip).mel)
    speech = encode_speech(clip.mono, encoder, layer=1)
    want = {"mel": lambda: mel.windows(times), "speech": lambda: speech.windows(times)}
    if kind == "mel+speech":
        got_mel, got_speech = streamed.features.mel.windows(times), streamed.features.speech.windows(times)
        np.testing.assert_allclose(got_mel, want["mel"](), atol=1e-5)
        np.testing.assert_allclose(got_speech, want["speech"](), atol=1e-5)
    else:
        np.testing.assert_allclose(streamed.features.windows(times), want[kind](), atol=1e-5)
    assert len(list(tmp_path.glob("dubber-rows-*"))) == len(streamed.stores)
    streamed.close()
    assert not list(tmp_path.glob("dubber-rows-*"))


def test_streamed_features_of_a_files_start_equal_those_of_the_start_alone(tmp_path):
    rng = np.random.default_rng(3)
    samples = (0.2 * rng.standard_normal(16000 * 5 + 77)).clip(-1, 1)
    whole = write_wav(tmp_path / "whole.wav", samples, 16000)
    start = write_wav(tmp_path / "start.wav", samples[: round(2.3 * 16000)], 16000)
    got = stream_features(whole, "mel", max_seconds=2.3, folder=tmp_path)
    want = stream_features(start, "mel", folder=tmp_path)
    assert got.seconds == want.seconds == 2.3  # decoding stopped there
    times = np.arange(0, 2.3, 0.04)
    np.testing.assert_array_equal(got.features.windows(times), want.features.windows(times))
    got.close(), want.close()


@pytest.mark.parametrize("kind", ["mel", "mel+speech"])
def test_a_sound_led_or_late_is_read_from_the_features_start(tmp_path, kind):
    """``lead`` > 0: the features of the sound after that much silence; < 0: of the sound without its start; with
    ``max_seconds`` counted from the features' start."""
    torch.manual_seed(0)
    encoder = SpeechEncoder(SpeechEncoderConfig.named("tiny-test")).eval()
    rng = np.random.default_rng(6)
    samples = (0.2 * rng.standard_normal(16000 * 3 + 51)).clip(-1, 1)
    sound = write_wav(tmp_path / "sound.wav", samples, 16000)
    late = write_wav(tmp_path / "late.wav", np.concatenate([np.zeros(4000), samples]), 16000)
    early = write_wav(tmp_path / "early.wav", samples[4000:], 16000)
    times = np.arange(0, 2.0, 0.04)
    for lead, same in [(0.25, late), (-0.25, early)]:
        got = stream_features(sound, kind, encoder, layer=1, lead=lead, max_seconds=2.0, folder=tmp_path)
        want = stream_features(same, kind, encoder, layer=1, max_seconds=2.0, folder=tmp_path)
        assert got.seconds == want.seconds == 2.0
        parts = ["mel", "speech"] if kind == "mel+speech" else [None]
        for part in parts:
            a, b = (f.features if part is None else getattr(f.features, part) for f in (got, want))
            np.testing.assert_allclose(a.windows(times), b.windows(times), atol=1e-5)
        got.close(), want.close()


def test_a_files_sound_lead_is_read_from_its_streams_first_frames(tmp_path):
    from dubber.media.container import sound_lead
    from tests.media_factory import make_audio, make_face_video, with_sound_moved

    video = make_face_video(tmp_path / "talk.mp4", frames=25, audio_rate=16000)
    assert sound_lead(video) == 0.0  # AAC's priming samples, before zero, are dropped by the decoder
    sound = make_audio(tmp_path / "sound.wav", seconds=1.0)
    for seconds in (0.2, -0.12, 0.0):
        moved = with_sound_moved(video, sound, tmp_path / f"moved{seconds}.mkv", seconds)
        assert sound_lead(moved) == pytest.approx(seconds, abs=1e-3)
    assert sound_lead(make_face_video(tmp_path / "silent.mp4", frames=5)) == 0.0
    assert sound_lead(sound) == 0.0  # no picture


@pytest.mark.parametrize("kind", ["mel", "mel+speech"])
def test_a_stem_read_on_a_longer_timeline_equals_the_stem_followed_by_silence(tmp_path, kind):
    """``seconds`` past the stem's end: the features of the stem with that much silence after it, whatever the
    decoder's blocks; short of its end: those of its start, and it says which it did."""
    torch.manual_seed(0)
    encoder = SpeechEncoder(SpeechEncoderConfig.named("tiny-test")).eval()
    rng = np.random.default_rng(4)
    samples = (0.2 * rng.standard_normal(16000 * 2 + 123)).clip(-1, 1)
    stem = write_wav(tmp_path / "stem.wav", samples, 16000)
    padded = write_wav(tmp_path / "padded.wav", np.concatenate([samples, np.zeros(16000 * 3 - len(samples))]), 16000)
    got = stream_features(stem, kind, encoder, layer=1, seconds=3.0, folder=tmp_path)
    want = stream_features(padded, kind, encoder, layer=1, folder=tmp_path)
    assert got.seconds == want.seconds == 3.0 and not got.cut
    assert got.padded == pytest.approx(3.0 - len(samples) / 16000)
    times = np.arange(0, 3.0, 0.04)
    if kind == "mel":
        np.testing.assert_allclose(got.features.windows(times), want.features.windows(times), atol=1e-6)
    else:
        for part in ("mel", "speech"):
            np.testing.assert_allclose(
                getattr(got.features, part).windows(times), getattr(want.features, part).windows(times), atol=1e-5
            )
    short = stream_features(stem, "mel", seconds=1.5, folder=tmp_path)
    exact = stream_features(stem, "mel", seconds=len(samples) / 16000, folder=tmp_path)
    assert (short.seconds, short.cut, short.padded) == (1.5, True, 0.0)
    assert (exact.cut, exact.padded) == (False, 0.0)  # a stem exactly the mix's length is neither cut nor padded
    for streamed in (got, want, short, exact):
        streamed.close()


def test_streamed_features_fail_typed_and_leave_nothing(tmp_path):
    from tests.media_factory import make_video

    silent = make_video(tmp_path / "v.mp4", frames=3)  # no audio stream
    with pytest.raises(NoAudioStreamError):
        stream_features(silent, "mel", folder=tmp_path)
    with pytest.raises(ValueError, match="speech encoder"):
        stream_features(silent, "speech", folder=tmp_path)
    with pytest.raises(ValueError, match="unknown audio input"):
        stream_features(silent, "phonemes", folder=tmp_path)
    assert not list(tmp_path.glob("dubber-rows-*"))


def test_spliced_audio_is_each_span_cut_or_padded_in_turn(tmp_path):
    rng = np.random.default_rng(3)
    a = write_wav(tmp_path / "a.wav", 0.3 * rng.standard_normal(48000 // 2).clip(-3, 3) / 3, 48000)  # 0.5 s
    b = write_wav(tmp_path / "b.wav", 0.3 * rng.standard_normal(48000 * 2).clip(-3, 3) / 3, 48000)  # 2 s
    spliced = SplicedAudio((AudioSpan(a, 0.0, 0.75), AudioSpan(b, 0.75, 1.0), AudioSpan(None, 0, 0.25)), 48000)
    feed = make_audio_feed(spliced, "mp4", AudioEncodeOptions())
    got = np.concatenate(list(feed.blocks), axis=1)
    feed.close()
    sa, sb = decode_audio(a, sample_rate=48000).samples, decode_audio(b, sample_rate=48000).samples
    middle = sb[:, 36000:84000].astype(np.float32)  # faded in and out at its joins (5 ms: 240 samples)
    middle[:, :240] *= fade_ramp(240)
    middle[:, -240:] *= fade_ramp(240)[::-1]
    want = np.concatenate([sa, np.zeros((1, 12000)), middle, np.zeros((1, 12000))], axis=1)
    assert got.shape == (1, 96000)
    np.testing.assert_allclose(got, want.astype(np.float32), atol=1e-7)


@pytest.mark.parametrize("block", [1, 7, 100, 10_000])
def test_a_join_is_faded_out_and_in_whatever_the_blocks(block):
    x = np.ones((2, 1000), np.float32)
    got = np.concatenate(list(faded([x[:, i : i + block] for i in range(0, 1000, block)], 30, 20)), 1)
    assert got.shape == (2, 1000)
    np.testing.assert_array_equal(got[:, :30], np.broadcast_to(fade_ramp(30), (2, 30)))
    np.testing.assert_array_equal(got[:, -20:], np.broadcast_to(fade_ramp(20)[::-1], (2, 20)))
    np.testing.assert_array_equal(got[:, 30:-20], 1.0)
    assert 0 < got[0, 0] < 0.01 and 0 < got[0, -1] < 0.01  # near silence at the joins, never a jump
    short = np.concatenate(list(faded([x[:, :10]], 30, 20)), 1)  # a span shorter than its fades: both, in part
    np.testing.assert_array_equal(short[0], fade_ramp(30)[:10] * fade_ramp(20)[::-1][10:])


def test_spliced_speech_has_no_click_where_the_spans_meet(tmp_path):
    """Two tones spliced where their waveforms are far apart: the largest step between neighbouring samples at the
    join is no larger than inside either tone."""
    t = np.arange(48000) / 48000
    a = write_wav(tmp_path / "a.wav", 0.5 * np.sin(2 * np.pi * 440 * t), 48000)
    b = write_wav(tmp_path / "b.wav", 0.5 * np.cos(2 * np.pi * 300 * t), 48000)
    spliced = SplicedAudio((AudioSpan(a, 0.0, 0.5), AudioSpan(b, 0.0, 0.5)), 48000)  # a ends near 0, b starts at 0.5
    feed = make_audio_feed(spliced, "mp4", AudioEncodeOptions())
    got = np.concatenate(list(feed.blocks), axis=1)[0]
    feed.close()
    steps = np.abs(np.diff(got))
    assert steps[23900:24100].max() <= steps[:23000].max() + 1e-6  # sin 440 Hz at 0.5: 0.029 a sample
