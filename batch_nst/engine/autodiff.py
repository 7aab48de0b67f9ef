"""The only backend-specific part of the engine: differentiate and compile a loss function.

Everything else (network, losses, Adam, L-BFGS) is written once in `keras.ops`. Here each backend
gives five things:
- `freeze(model)`: keep the network's weights out of every gradient.
- `call(model, variables, x)`: run the network. JAX runs it statelessly on weights passed in as
  arguments: closed over, 80 MB of weights would be compiled into the program as constants.
- `value_and_grad(f)`: `f(x, *args) -> (scalar, aux)` becomes `g(x, *args) -> ((scalar, aux), df/dx)`.
- `compile(f, on_trace)`: TensorFlow and JAX trace `f` once per input shape into one program;
  PyTorch runs through `torch.compile` where `backend.torch_compile()` says so, else eagerly.
  `on_trace` runs at each trace, so callers can count them.
- `compile_steps(step, names, on_trace)`: `step(state, t, *args) -> (state, terms)`, `t` the
  1-based step number as float32, becomes `run(k, state, done, *args) -> (state, terms)`: k steps
  after step `done`, the terms named in `names` stacked [k, ...]. TensorFlow and JAX keep the loop
  in the program (a `while_loop` in the `tf.function`; `lax.scan`), so k steps cost one dispatch
  and the step counter is computed on the device. `k` is a constant of each program (one trace
  per k): a known trip count lets XLA's GPU loop skip reading its condition back to the host.
  PyTorch loops in Python over one compiled step (compiling k copies of it would take k times
  as long).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import keras

from batch_nst.engine import backend

log = logging.getLogger(__name__)


class _TensorFlow:
    @staticmethod
    def freeze(model: keras.Model) -> None:
        """Nothing to do: `trainable = False` keeps the weights out of every gradient."""

    @staticmethod
    def variables(model: keras.Model) -> tuple:
        return ()

    @staticmethod
    def call(model: keras.Model, variables: tuple, x: Any) -> dict[str, Any]:
        return model(x, training=False)

    @staticmethod
    def value_and_grad(f: Callable) -> Callable:
        import tensorflow as tf

        def g(x, *args):
            with tf.GradientTape() as tape:
                tape.watch(x)
                value, aux = f(x, *args)
            return (value, aux), tape.gradient(value, x)

        return g

    @staticmethod
    def compile(f: Callable, on_trace: Callable[[], None]) -> Callable:
        """A tf.function, with Grappler's graph rewrites off for determinism: with them on, a
        batch's input gradient on CPU differed in its last bits from call to call and from process
        to process (one input, 4 items of 256 px: four different results in five calls), so one
        manifest gave different bytes run to run and a resumed item could not equal an
        uninterrupted one (issue 20). Off, at fp32 and at bf16 (oneDNN) every call in every process
        gives one result (tests/test_determinism.py), for ~6-9% more time a step on CPU (4 items of
        256 px). Set here, not in `backend.use`: library callers (`batch_nst.stylize`) compile
        steps without ever calling `use`, and the option must hold before any step is traced."""
        import tensorflow as tf

        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})

        def traced(*args):
            on_trace()  # a Python side effect: runs while tracing only
            return f(*args)

        # Without autograph: the steps' loop is an explicit `while_loop` and nothing here branches
        # on a tensor in Python, so rewriting the Python source at each trace buys nothing (~1 s
        # of CPU a trace: a fifth of a small item's first step).
        return tf.function(traced, autograph=False)

    @staticmethod
    def compile_steps(step: Callable, names: tuple[str, ...], on_trace: Callable[[], None]) -> Callable:
        import tensorflow as tf

        def steps(k, state, done, *args):  # a Python int k is part of tf.function's trace key
            def body(i, state, stacked):
                state, terms = step(state, done + tf.cast(i + 1, "float32"), *args)
                return i + 1, state, {n: stacked[n].write(i, terms[n]) for n in names}

            stacked = {n: tf.TensorArray("float32", size=k) for n in names}
            _, state, stacked = tf.while_loop(lambda i, *_: i < k, body, (tf.constant(0), state, stacked),
                                              parallel_iterations=1)
            return state, {n: a.stack() for n, a in stacked.items()}

        return _TensorFlow.compile(steps, on_trace)


class _Jax:
    freeze = _TensorFlow.freeze

    @staticmethod
    def variables(model: keras.Model) -> tuple:
        return tuple(v.value for v in model.trainable_variables), tuple(v.value for v in model.non_trainable_variables)

    @staticmethod
    def call(model: keras.Model, variables: tuple, x: Any) -> dict[str, Any]:
        trainable, non_trainable = variables
        outputs, _ = model.stateless_call(list(trainable), list(non_trainable), x, training=False)
        return outputs

    @staticmethod
    def value_and_grad(f: Callable) -> Callable:
        import jax

        return jax.value_and_grad(f, has_aux=True)

    @staticmethod
    def compile(f: Callable, on_trace: Callable[[], None], static_argnums: tuple[int, ...] = ()) -> Callable:
        import jax

        def traced(*args):
            on_trace()
            return f(*args)

        return jax.jit(traced, static_argnums=static_argnums)

    @staticmethod
    def compile_steps(step: Callable, names: tuple[str, ...], on_trace: Callable[[], None]) -> Callable:
        import jax
        import jax.numpy as jnp

        def steps(k, state, done, *args):
            state, terms = jax.lax.scan(lambda state, i: step(state, done + i, *args), state,
                                        jnp.arange(1, k + 1, dtype="float32"))
            return state, {n: terms[n] for n in names}

        return _Jax.compile(steps, on_trace, static_argnums=(0,))


class _Torch:
    variables = _TensorFlow.variables
    call = _TensorFlow.call

    @staticmethod
    def freeze(model: keras.Model) -> None:
        """Keras' `trainable = False` leaves the torch parameters' `requires_grad` on: every
        forward pass would record the weights' graph, and the features could not become arrays."""
        for variable in model.weights:
            variable.value.requires_grad_(False)

    @staticmethod
    def value_and_grad(f: Callable) -> Callable:
        import torch

        def g(x, *args):
            with torch.enable_grad():  # also inside `compile`'s no_grad
                x = x.detach().requires_grad_(True)
                value, aux = f(x, *args)
                (grad,) = torch.autograd.grad(value, x)
            detach = lambda t: t.detach() if isinstance(t, torch.Tensor) else t  # noqa: E731
            return (value.detach(), keras.tree.map_structure(detach, aux)), grad

        return g

    @staticmethod
    def compile(f: Callable, on_trace: Callable[[], None]) -> Callable:
        """Eager, or through `torch.compile` where `backend.torch_compile()` names a mode (by
        default on CUDA only: on CPU compiling a step took 80 s). One 'trace' per compiled
        function either way, so trace counts mean the same on every backend."""
        import torch

        on_trace()
        mode = backend.torch_compile()
        run = f if mode is None else _CompiledOrEager(f, mode)

        def no_grad(*args):
            with torch.no_grad():  # the update after the gradient must not grow a graph
                return run(*args)

        return no_grad

    @staticmethod
    def compile_steps(step: Callable, names: tuple[str, ...], on_trace: Callable[[], None]) -> Callable:
        import torch

        one = _Torch.compile(step, on_trace)

        def steps(k, state, done, *args):
            rows = []
            for i in range(1, k + 1):
                state, terms = one(state, done + i, *args)
                rows.append(terms)
            return state, {n: torch.stack([row[n] for row in rows]) for n in names}

        return steps


class _CompiledOrEager:
    """`torch.compile(f)`, which compiles at its first call; where that fails (no C++ compiler,
    something Dynamo cannot trace), `f` eagerly from then on, after one line of warning."""

    def __init__(self, f: Callable, mode: str):
        import torch

        self.f, self.mode = f, mode
        self.run = torch.compile(f, mode=mode, dynamic=False)  # one program per shape, as on TF and JAX
        self.first = True

    def __call__(self, *args):
        if not self.first:
            return self._call(args)
        self.first = False
        try:
            return self._call(args)
        except Exception as error:  # whatever the compiler raised, the eager step computes the same
            reason = (str(error).strip().splitlines() or [""])[0][:200]
            log.warning("torch.compile failed, this step runs eagerly: %s: %s", type(error).__name__, reason)
            self.run = self.f
            return self.f(*args)

    def _call(self, args: tuple) -> Any:
        """CUDA graphs (`reduce-overhead`) reuse their output buffers at the next replay: the
        outputs a caller keeps (a step's losses, stacked later) are copied out."""
        if self.mode != "reduce-overhead" or self.run is self.f:
            return self.run(*args)
        import torch

        torch.compiler.cudagraph_mark_step_begin()
        return keras.tree.map_structure(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, self.run(*args))


_BACKENDS = {"tensorflow": _TensorFlow, "jax": _Jax, "torch": _Torch}


def current():
    """This process's backend's functions (Keras' backend, fixed at import)."""
    return _BACKENDS[keras.backend.backend()]
