"""The only backend-specific part of the engine: differentiate and compile a loss function.

Everything else (network, losses, Adam, L-BFGS) is written once in `keras.ops`. Here each backend
gives four things:
- `freeze(model)`: keep the network's weights out of every gradient.
- `call(model, variables, x)`: run the network. JAX runs it statelessly on weights passed in as
  arguments: closed over, 80 MB of weights would be compiled into the program as constants.
- `value_and_grad(f)`: `f(x, *args) -> (scalar, aux)` becomes `g(x, *args) -> ((scalar, aux), df/dx)`.
- `compile(f, on_trace)`: TensorFlow and JAX trace `f` once per input shape into one program;
  PyTorch runs eagerly. `on_trace` runs at each trace, so callers can count them.
"""

from __future__ import annotations

from typing import Any, Callable

import keras


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
        import tensorflow as tf

        def traced(*args):
            on_trace()  # a Python side effect: runs while tracing only
            return f(*args)

        return tf.function(traced)


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
    def compile(f: Callable, on_trace: Callable[[], None]) -> Callable:
        import jax

        def traced(*args):
            on_trace()
            return f(*args)

        return jax.jit(traced)


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
        """Eager: one 'trace' per compiled function, so trace counts mean the same on every backend."""
        import torch

        on_trace()

        def run(*args):
            with torch.no_grad():  # the update after the gradient must not grow a graph
                return f(*args)

        return run


_BACKENDS = {"tensorflow": _TensorFlow, "jax": _Jax, "torch": _Torch}


def current():
    """This process's backend's three functions (Keras' backend, fixed at import)."""
    return _BACKENDS[keras.backend.backend()]
