"""An optimization's State: taken every N steps, it continues a run exactly, and its npz bytes
give back every field (ragged histories and the chunks already finished included)."""

import numpy as np

from batch_nst.engine.checkpoint import State
from batch_nst.params import StyleParams
from tests.conftest import problem


def test_resuming_from_a_checkpoint_continues_exactly(optimizer):
    content, targets = problem(optimizer, seeds=(30, 31))
    params = StyleParams(steps=10)
    full, (history,) = optimizer.run(content, targets, params)
    states = []
    optimizer.run(content, targets, params, checkpoint=states.append, checkpoint_every=4)
    assert [s.step for s in states] == [4, 8]
    resumed, (rest,) = optimizer.run(content, targets, params, resume=states[0])
    np.testing.assert_array_equal(resumed, full)
    assert rest == history and states[0].histories[0] == tuple(history[:4])


def test_bytes_give_back_every_field_and_a_part_is_its_items_share():
    rng = np.random.default_rng(0)
    arrays = [rng.random((3, 4, 5, 3)).astype(np.float32) for _ in range(3)]
    state = State(7, *arrays, histories=((3.0, 2.5), (4.0,), ()), stopped=(False, True, False), stage=1,
                  earlier=((9.0,), (8.0, 7.5), (6.0,)), finished=arrays[0][:2], finished_histories=((1.0, 0.5),))
    back = State.from_bytes(state.to_bytes())
    for name in ("step", "histories", "stopped", "stage", "earlier", "finished_histories"):
        assert getattr(back, name) == getattr(state, name), name
    for name in ("pixels", "momentum", "velocity", "finished"):
        np.testing.assert_array_equal(getattr(back, name), getattr(state, name))
    part = state.part(1, 3)
    assert (part.histories, part.stopped, part.earlier) == (((4.0,), ()), (True, False), ((8.0, 7.5), (6.0,)))
    np.testing.assert_array_equal(part.velocity, arrays[2][1:3])
    assert State.from_bytes(State(0, *arrays, histories=((),) * 3, stopped=(False,) * 3).to_bytes()).finished is None
