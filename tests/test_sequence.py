"""Animations: frames tied by the temporal term keep a still background still, and an animation
longer than a batch runs in chunks, each anchored on the one before, resumable mid-way."""

import dataclasses

import numpy as np
import pytest

from batch_nst.params import StyleParams
from batch_nst.engine.transfer import evaluate, stylize
from tests.conftest import smooth_image


def _flipbook(side=32, frames=4):
    """A sprite moving across a still background, as a sheet of `frames` cells, and where it never is."""
    background = smooth_image(side, side, 11)
    cells, moving = [], np.zeros((side, side), bool)
    for t in range(frames):
        cell = background.copy()
        rows, columns = slice(side // 3, side // 3 + 10), slice(2 + 6 * t, 10 + 6 * t)
        cell[rows, columns] = (230, 40, 40)
        moving[rows, columns] = True
        cells.append(cell)
    return np.concatenate(cells, axis=1), ~moving


def _flicker(image, still, frames=4):
    """Mean change of the still background's pixels between consecutive output frames."""
    side = image.shape[0]
    out = [image[:, i * side:(i + 1) * side].astype(float) for i in range(frames)]
    return np.mean([np.abs(out[i + 1] - out[i])[still].mean() for i in range(frames - 1)])


def test_the_temporal_term_keeps_a_still_background_still(optimizer):
    sheet, still = _flipbook()
    style = smooth_image(64, 64, 12)
    flicker = {}
    for weight in (0.0, StyleParams().temporal_weight):
        params = StyleParams(steps=24, max_size=32, grid="4x1", frames=True, temporal_weight=weight, precision="fp32")
        flicker[weight] = _flicker(stylize(sheet, style, params=params, extractor=optimizer).image.rgb, still)
    assert flicker[StyleParams().temporal_weight] <= flicker[0.0] / 4, flicker


def test_an_animation_longer_than_a_batch_runs_in_anchored_chunks_and_resumes(optimizer):
    """Four frames two at a time: the second chunk is tied to the first's last frame (its first
    frame's temporal loss is not zero), and a run resumed from a checkpoint taken in the second
    chunk (which carries the first chunk's frames) ends where the uninterrupted one did."""
    from batch_nst.engine.transfer import stylize_many

    sheet, _ = _flipbook()
    style = smooth_image(64, 64, 12)
    params = StyleParams(steps=6, max_size=32, grid="4x1", frames=True, precision="fp32")
    states = []
    whole = stylize_many([sheet], [style], params=params, extractor=optimizer, max_cells=2,
                         checkpoint=states.append, checkpoint_every=3)[0]
    assert whole.losses.temporal > 0 and len(whole.history) == 6
    recomputed = evaluate(sheet, style, whole.image, params=params, extractor=optimizer)  # all four at once
    assert dataclasses.astuple(whole.losses) == pytest.approx(dataclasses.astuple(recomputed), rel=1e-5)
    second = next(s for s in states if s.finished is not None)
    assert second.finished.shape[0] == 2 and len(second.finished_histories) == 2
    resumed = stylize_many([sheet], [style], params=params, extractor=optimizer, max_cells=2, resume=second)[0]
    np.testing.assert_array_equal(resumed.image.rgb, whole.image.rgb)
    together = stylize_many([sheet], [style], params=params, extractor=optimizer, resume=second)[0]  # bound raised
    assert len(together.history) == 6  # the chunk's state does not fit one batch of four: started over
