"""The renderer training pack: a prepared cache cut to what renderer training reads, within a size limit."""

from __future__ import annotations

import numpy as np
import pytest

from dubber.data.cache import PrepCache
from dubber.data.render_clips import load_render_clips
from dubber.data.render_pack import write_render_pack
from dubber.errors import InputError
from tests.synthetic_cache import make_cache

SPLITS = ("dev", "train", "video_only")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    speakers = {"ann": "train", "bob": "train", "cat": "video_only", "dan": "dev"}
    return make_cache(tmp_path_factory.mktemp("cache"), speakers, clips_per_speaker=3, frames=40, crops=True)


def test_the_pack_trains_on_what_the_cache_gives_the_trainer(cache, tmp_path):
    summary = write_render_pack(PrepCache(cache), tmp_path / "pack", limit_mib=50, frames_per_clip=6, splits=SPLITS)
    assert (summary.clips, summary.speakers, summary.frames, summary.left_out) == (12, 4, 72, 0)
    full = {c.clip_id: c for c in load_render_clips(PrepCache(cache), SPLITS, max_frames=6)}
    packed = load_render_clips(PrepCache(tmp_path / "pack"), SPLITS, max_frames=40)  # the trainer's default
    assert len(packed) == len(full) == 12
    for clip in packed:
        want = full[clip.clip_id]
        # The same frames at the same positions in the clip (reference distances read them), the same points,
        # and the crops again after one more H.264 pass at CRF 12.
        np.testing.assert_array_equal(clip.frame_index, want.frame_index)
        np.testing.assert_array_equal(clip.points, want.points)
        assert clip.speaker == want.speaker and clip.split == want.split
        assert np.abs(clip.crops.astype(int) - want.crops).mean() < 2.0
    assert PrepCache(tmp_path / "pack").records(with_audio=True) == []  # not for the landmark completer


def test_a_limit_stops_the_pack_with_every_speaker_in_it(cache, tmp_path):
    whole = write_render_pack(PrepCache(cache), tmp_path / "whole", limit_mib=50, frames_per_clip=6, splits=SPLITS)
    limit = 4096 + (whole.bytes - 4096) * 0.6  # room for about 7 of the 12 clips
    cut = write_render_pack(
        PrepCache(cache), tmp_path / "cut", limit_mib=limit / (1 << 20), frames_per_clip=6, splits=SPLITS
    )
    on_disk = sum(f.stat().st_size for f in (tmp_path / "cut").rglob("*") if f.is_file())
    assert on_disk <= cut.limit_bytes and cut.bytes <= cut.limit_bytes
    assert 4 <= cut.clips < 12 and cut.left_out == 12 - cut.clips
    assert {r.speaker for r in PrepCache(tmp_path / "cut").records()} == {"ann", "bob", "cat", "dan"}
    assert not (tmp_path / "cut.partial").exists()
    halves = [
        {
            r.clip_id
            for r in PrepCache(write_render_pack(PrepCache(cache), tmp_path / f"h{k}", parts=2, part=k).pack).records()
        }
        for k in (0, 1)
    ]
    assert not halves[0] & halves[1] and len(halves[0] | halves[1]) == 12  # packs to send in turn: different clips


def test_a_pack_is_written_into_a_new_folder(cache, tmp_path):
    (tmp_path / "pack").mkdir()
    with pytest.raises(InputError, match="exists already"):
        write_render_pack(PrepCache(cache), tmp_path / "pack")
    with pytest.raises(InputError, match="frames_per_clip=1"):
        write_render_pack(PrepCache(cache), tmp_path / "other", frames_per_clip=1)
    with pytest.raises(InputError, match="part=2 of parts=2"):
        write_render_pack(PrepCache(cache), tmp_path / "other", parts=2, part=2)


def test_a_renderer_comes_back_in_shards_and_trains_on_from_them(tmp_path):
    import torch

    from dubber.errors import WeightsError
    from dubber.models.renderer_unet import RendererUNet, renderer_config
    from dubber.render import FaceRenderer
    from dubber.training.renderer_trainer import initial_weights
    from dubber.weights import load_renderer

    torch.manual_seed(0)
    renderer = FaceRenderer(RendererUNet(**renderer_config("tiny")), hint_warp=True)
    renderer.save_pretrained(tmp_path / "r", dtype=torch.float16, max_shard_mib=0.1)
    shards = sorted((tmp_path / "r" / "unet").glob("*.safetensors"))
    assert len(shards) > 1 and all(f.stat().st_size <= 0.1 * (1 << 20) for f in shards)
    back = FaceRenderer.from_pretrained(tmp_path / "r")
    state = initial_weights(tmp_path / "r")  # what `dub train renderer --init-from` reads
    for name, value in renderer.unet.state_dict().items():
        assert torch.equal(back.unet.state_dict()[name], value.half().float()), name
        assert torch.equal(state[name], value.half()), name
    assert back.hint_warp
    assert load_renderer(tmp_path / "r").hint_warp  # as `--weights` and `dub eval renderer --weights` load it
    shards[-1].write_bytes(b"not weights")
    with pytest.raises(WeightsError, match=shards[-1].name):
        load_renderer(tmp_path / "r")
