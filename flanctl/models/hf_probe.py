"""The tokenizer check for Hugging Face checkpoints: flanctl's ids must be the checkpoint's own.

A checkpoint is only as good as the ids it is fed. keras-hub converts an HF folder's tokenizer
by the architecture's name (every HF Llama gets the Llama 3 byte-level BPE tokenizer, so a
Llama-2-style SentencePiece folder loads without complaint and trains on wrong ids). So when a
family loads an HF folder it encodes one probe text with the tokenizer flanctl will use and with
transformers' `AutoTokenizer` over the same folder, special tokens left out on both sides
(framing is flanctl's own: BOS/EOS per family), and refuses the folder when they differ, before
any training step. Without transformers installed the check is skipped (it is the `hf` extra).
"""

from __future__ import annotations

from pathlib import Path

from flanctl.errors import FlanctlError

#: Words, digits, punctuation, a leading space and a doubled space: where tokenizers disagree.
PROBE_TEXT = " Translate to German: the quick fox? Answer: 42, yes.  It's 3.5 km (Q&A) - done!"


def hf_ids(folder: Path, text: str = PROBE_TEXT) -> list[int] | None:
    """transformers' ids of `text` for the folder's own tokenizer (no special tokens), or None
    when transformers is not installed or the folder has no tokenizer it can load."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        return None
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def check_tokenizer(folder, tokenizer, fix: str | None = None) -> None:
    """Raise a one-line `FlanctlError` when `tokenizer` (flanctl's interface: `encode`) gives
    other ids than the checkpoint's own tokenizer on the probe text."""
    if tokenizer is None:
        return
    theirs = hf_ids(Path(folder))
    if theirs is None:
        return
    ours = list(tokenizer.encode(PROBE_TEXT))
    if ours == theirs:
        return
    at = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
    got = ours[at] if at < len(ours) else "end"
    want = theirs[at] if at < len(theirs) else "end"
    hint = f"; {fix}" if fix else ""
    raise FlanctlError(
        f"{folder}: the tokenizer flanctl would feed ({type(tokenizer).__name__}) does not give the checkpoint's own "
        f"token ids on a probe text ({len(ours)} vs {len(theirs)} ids, first difference at {at}: {got} vs {want}){hint}"
    )
