"""Tokenizers: byte-level (no download), SentencePiece (trained locally if missing), keras-hub presets.

All three share one small interface (`encode`, `decode`, `vocab_size`, `pad_id`, `eos_id`,
`bos_id`, `fingerprint`) so the rest of the pipeline never asks which kind it has. The
fingerprint goes into cache keys: a different vocabulary must never reuse cached token ids.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from flanctl.errors import FlanctlError


class ByteTokenizer:
    """UTF-8 bytes as tokens: id 0 pad, 1 eos, 2 bos, byte b -> b + 3 (vocabulary 259)."""

    vocab_size = 259
    pad_id = 0
    eos_id = 1
    bos_id = 2
    fingerprint = "byte-v1"
    _OFFSET = 3

    def encode(self, text: str) -> list[int]:
        return self.encode_array(text).tolist()

    def encode_array(self, text: str) -> np.ndarray:
        """Token ids as an int32 array (the fast path the pipeline uses)."""
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int32) + self._OFFSET

    def count(self, text: str) -> int:
        """Number of tokens `text` encodes to (no encoding needed for bytes)."""
        return len(text.encode("utf-8"))

    def encode_arrow(self, arr) -> tuple[np.ndarray, np.ndarray]:
        """A pyarrow string array as (flat int32 ids, int64 offsets): the UTF-8 buffer itself, no Python per row."""
        import pyarrow as pa

        arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
        if arr.null_count:
            arr = arr.fill_null("")
        if pa.types.is_string(arr.type):
            arr = arr.cast(pa.large_string())
        off = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset: arr.offset + len(arr) + 1]
        data = arr.buffers()[2]
        flat = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
        flat = flat[off[0]:off[-1]].astype(np.int32) + self._OFFSET
        return flat, (off - off[0]).astype(np.int64)

    def decode(self, ids: Iterable[int]) -> str:
        data = bytes(int(i) - self._OFFSET for i in ids if int(i) >= self._OFFSET and int(i) - self._OFFSET < 256)
        return data.decode("utf-8", errors="replace")


class SentencePieceTokenizer:
    """A SentencePiece model file (`.model`)."""

    def __init__(self, model_file: Path):
        import sentencepiece as spm

        self.path = Path(model_file)
        self._sp = spm.SentencePieceProcessor(model_file=str(self.path))
        self.vocab_size = int(self._sp.get_piece_size())
        pad = self._sp.pad_id()
        self.pad_id = pad if pad >= 0 else 0
        self.eos_id = self._sp.eos_id() if self._sp.eos_id() >= 0 else None
        bos = self._sp.bos_id()
        self.bos_id = bos if bos >= 0 else None
        self.fingerprint = "spm-" + hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]

    def __reduce__(self):  # for tokenizing worker processes: reopen the model file there
        return (SentencePieceTokenizer, (self.path,))

    def encode(self, text: str) -> list[int]:
        return list(self._sp.encode(text))

    def encode_arrow(self, arr, num_threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """A pyarrow string array as (flat int32 ids, int64 offsets), one batched encode call."""
        import itertools

        import pyarrow as pa

        arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
        arr = arr.fill_null("") if arr.null_count else arr
        flats, lens = [], []
        for start in range(0, len(arr), 1024):  # Python lists of ids only for 1,024 rows at a time
            ids = self._sp.encode(arr.slice(start, 1024).to_pylist(), num_threads=num_threads)
            n = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
            flats.append(np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int32, count=int(n.sum())))
            lens.append(n)
        off = np.zeros(len(arr) + 1, dtype=np.int64)
        if lens:
            np.cumsum(np.concatenate(lens), out=off[1:])
        return (np.concatenate(flats) if flats else np.zeros(0, np.int32)), off

    def encode_array(self, text: str) -> np.ndarray:
        return np.asarray(self._sp.encode(text), dtype=np.int32)

    def count(self, text: str) -> int:
        return len(self._sp.encode(text))

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`; ids above the pieces (span sentinels of a grown vocabulary, which a
        model may generate) are dropped, as the byte tokenizer drops ids that are not bytes."""
        return self._sp.decode([int(i) for i in ids if 0 <= int(i) < self.vocab_size])


class PresetTokenizer:
    """The tokenizer of a keras-hub preset directory, via `keras_hub.tokenizers.Tokenizer.from_preset`."""

    def __init__(self, preset: str, backend: str | None = None):
        from flanctl.runtime import setup_process

        setup_process(backend)
        import keras_hub

        try:
            self._tok = keras_hub.tokenizers.Tokenizer.from_preset(preset)
        except Exception as exc:  # keras-hub raises many kinds; the user needs one line
            raise FlanctlError(
                f"model.tokenizer: could not load the keras-hub tokenizer of preset '{preset}': {exc}; "
                "give a local preset directory (with tokenizer.json and its assets) in model.tokenizer.path"
            ) from exc
        self.vocab_size = int(self._tok.vocabulary_size())
        self.pad_id = int(getattr(self._tok, "pad_token_id", None) or 0)
        eos = getattr(self._tok, "end_token_id", None)
        self.eos_id = int(eos) if eos is not None else None
        bos = getattr(self._tok, "start_token_id", None)
        self.bos_id = int(bos) if bos is not None else None
        digest = hashlib.sha256()
        root = Path(preset)
        if root.is_dir():
            for f in sorted(root.rglob("*")):
                if f.is_file() and ("tokenizer" in f.name or "assets" in f.parts):
                    digest.update(f.name.encode())
                    digest.update(f.read_bytes())
        else:
            digest.update(preset.encode())
        self.fingerprint = "preset-" + digest.hexdigest()[:16]

    def encode(self, text: str) -> list[int]:
        return [int(i) for i in np.asarray(self._tok(text)).reshape(-1)]

    def encode_array(self, text: str) -> np.ndarray:
        return np.asarray(self._tok(text), dtype=np.int32).reshape(-1)

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def decode(self, ids: Iterable[int]) -> str:
        out = self._tok.detokenize(np.asarray(list(ids), dtype=np.int32))
        out = out.numpy() if hasattr(out, "numpy") else out
        if isinstance(out, np.ndarray):
            out = out.item() if out.shape == () else out.tolist()
        return out.decode("utf-8") if isinstance(out, bytes) else str(out)


Tokenizer = ByteTokenizer | SentencePieceTokenizer | PresetTokenizer


def train_sentencepiece(texts: Iterable[str], model_file: Path, vocab_size: int) -> Path:
    """Train a unigram SentencePiece model on `texts` (ids: 0 pad, 1 eos, 2 bos, 3 unk).

    Written next to `model_file` under a temporary prefix and renamed, so an interrupted
    training never leaves a half-written model that would be picked up later.
    """
    import sentencepiece as spm

    model_file = Path(model_file)
    model_file.parent.mkdir(parents=True, exist_ok=True)
    prefix = model_file.with_name(f".{model_file.stem}.tmp{os.getpid()}")
    texts = [t for t in texts if t]
    if not texts:
        raise FlanctlError(f"cannot train a SentencePiece model for {model_file}: the mixture produced no text")
    try:
        _train(spm, texts, prefix, vocab_size)
    except RuntimeError as exc:  # e.g. a vocabulary too small for the 256 byte-fallback pieces
        raise FlanctlError(f"model.tokenizer: training SentencePiece for {model_file} failed: {str(exc).splitlines()[0]}") from exc
    os.replace(f"{prefix}.model", model_file)
    vocab = Path(f"{prefix}.vocab")
    if vocab.exists():
        os.replace(vocab, model_file.with_suffix(".vocab"))
    return model_file


def _train(spm, texts: list[str], prefix: Path, vocab_size: int) -> None:
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        bos_id=2,
        unk_id=3,
        hard_vocab_limit=False,  # small corpora cannot always fill the requested vocabulary
        character_coverage=1.0,
        byte_fallback=True,
        # Keep text exactly: the default normalisation folds newlines into spaces, and the
        # templates, few-shot delimiters and eval stop sequences all rely on "\n".
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        user_defined_symbols=["\n"],
        minloglevel=2,
    )


def get_tokenizer(tok_spec, base_dir, mixture_texts: Iterable[str] | None = None, backend: str | None = None) -> Tokenizer:
    """The tokenizer a spec's `model.tokenizer` section names.

    `base_dir` resolves relative paths (the spec file's folder). For `sentencepiece` with a
    missing model file, a model is trained on `mixture_texts` and saved at that path.
    """
    base_dir = Path(base_dir)
    kind = tok_spec.kind
    if kind == "byte":
        return ByteTokenizer()
    if kind == "sentencepiece":
        if not tok_spec.path:
            raise FlanctlError("model.tokenizer.path: a SentencePiece tokenizer needs a .model file path (it is trained there if missing)")
        model_file = Path(tok_spec.path)
        model_file = model_file if model_file.is_absolute() else base_dir / model_file
        if not model_file.exists():
            if mixture_texts is None:
                raise FlanctlError(f"model.tokenizer.path: {model_file} does not exist and no mixture text was given to train it")
            train_sentencepiece(mixture_texts, model_file, tok_spec.vocab_size)
        return SentencePieceTokenizer(model_file)
    if kind == "preset":
        handle = tok_spec.path
        if not handle:
            raise FlanctlError("model.tokenizer.path: a preset tokenizer needs a keras-hub preset directory or handle")
        local = Path(handle) if Path(handle).is_absolute() else base_dir / handle
        return PresetTokenizer(str(local) if local.exists() else handle, backend=backend)
    raise FlanctlError(f"model.tokenizer.kind: unknown tokenizer kind '{kind}'; use byte, sentencepiece or preset")
