"""The data room: sources, templates, mixtures, tokenization, packing and the on-disk cache.

Public seams (docs/INTERFACES.md): `get_tokenizer`, `tokenizer_for_spec`, `build_train_stream`, `realize_mixture`,
`data_stats`, `preview_examples`, and `builtin_tasks.generate`. Imports are lazy so that
`import flanctl.data` stays cheap; grain and datasets load only when a stream is built.
"""

from __future__ import annotations


def get_tokenizer(tok_spec, base_dir, mixture_texts=None, backend=None):
    from flanctl.data.tokenizers import get_tokenizer as _get

    return _get(tok_spec, base_dir, mixture_texts=mixture_texts, backend=backend)


def tokenizer_for_spec(spec, base_dir):
    """The spec's tokenizer, training a missing SentencePiece model on the mixture first."""
    from flanctl.data.stats import tokenizer_for_spec as _for_spec

    return _for_spec(spec, base_dir)


def build_train_stream(spec, base_dir, tokenizer, process_index: int = 0, process_count: int = 1, model=None):
    from flanctl.data.stream import build_train_stream as _build

    return _build(spec, base_dir, tokenizer, process_index, process_count, model=model)


def realize_mixture(spec, base_dir):
    from flanctl.data.stats import realize_mixture as _realize

    return _realize(spec, base_dir)


def data_stats(spec, base_dir, tokenizer=None):
    from flanctl.data.stats import data_stats as _stats

    return _stats(spec, base_dir, tokenizer=tokenizer)


def preview_examples(spec, base_dir, n: int = 5, task: str | None = None, tokenizer=None):
    from flanctl.data.stats import preview_examples as _preview

    return _preview(spec, base_dir, n=n, task=task, tokenizer=tokenizer)


__all__ = ["build_train_stream", "data_stats", "get_tokenizer", "preview_examples", "realize_mixture", "tokenizer_for_spec"]
