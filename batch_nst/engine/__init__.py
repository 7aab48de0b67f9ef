"""The engine: what runs inside one optimization, written once in `keras.ops`.

Pixels and a frozen `StyleParams` in, stylized pixels and losses out. It may import
`batch_nst.errors`, `batch_nst.params`, `batch_nst.weights` (a resolved local file) and
`batch_nst.assets`; never Ray, fsspec, manifests, records or the CLI (`batch_nst.job`, `cli`).
"""
