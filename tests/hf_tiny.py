"""Tiny Hugging Face models and tokenizers written locally for the HF interop tests (no network).

`t5_folder(path)` saves a T5 v1.1-shaped `T5ForConditionalGeneration` (gated-GELU, untied head,
random weights) with a SentencePiece tokenizer trained here in T5's id layout (pad 0, eos 1,
unk 2), as `save_pretrained` writes it.
"""

from __future__ import annotations

from pathlib import Path

TEXTS = [
    "Translate to German: the cat sits on the mat.",
    "Answer the question: what is two plus two? The answer is four.",
    "Premise: a man plays guitar. Hypothesis: a person makes music. Options: yes, no.",
    "Summarize: the quick brown fox jumps over the lazy dog again and again.",
    "Q: which is heavier, a kilogram of feathers or a kilogram of iron? A: neither.",
] * 40

PROBE = "Translate to German: the quick fox? Answer: 42, yes."


def train_t5_spm(folder: Path, vocab_size: int = 80) -> Path:
    """A SentencePiece model in T5's layout (pad 0, eos 1, unk 2, no bos) at folder/spiece.model."""
    import sentencepiece as spm

    folder.mkdir(parents=True, exist_ok=True)
    text = folder / "corpus.txt"
    text.write_text("\n".join(TEXTS) + "\n")
    spm.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(folder / "spiece"), vocab_size=vocab_size, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0, minloglevel=2,
    )
    text.unlink()
    return folder / "spiece.model"


def t5_config(vocab_size: int = 256, **overrides):
    from transformers import T5Config

    kwargs = dict(
        vocab_size=vocab_size, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_decoder_layers=2, num_heads=4,
        feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.0,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )
    kwargs.update(overrides)
    return T5Config(**kwargs)


def t5_folder(path: Path, seed: int = 0, max_shard_size: str | None = None, tied: bool = False, **overrides) -> Path:
    """Save a tiny random T5 v1.1-shaped model (untied LM head, no output scaling; `tied=True`
    keeps transformers' tied head) and its tokenizer (spiece.model, converted by
    `AutoTokenizer`) to `path`."""
    import json
    import shutil

    import torch
    from transformers import AutoTokenizer, T5ForConditionalGeneration

    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    spm_file = train_t5_spm(path / "_spm")
    shutil.copyfile(spm_file, path / "spiece.model")
    shutil.rmtree(path / "_spm")
    (path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "T5Tokenizer", "extra_ids": 100}))
    tok = AutoTokenizer.from_pretrained(path)
    vocab = overrides.pop("vocab_size", max(256, len(tok)))
    model = T5ForConditionalGeneration(t5_config(vocab, **overrides)).eval()
    if not tied:
        # transformers 5 builds T5 with a tied head; T5 v1.1 / Flan-T5 checkpoints have their own.
        model.lm_head.weight = torch.nn.Parameter(torch.randn(vocab, model.config.d_model) * 0.2)
        model.config.tie_word_embeddings = False
        model.config.scale_decoder_outputs = False
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(path, **kwargs)
    tok.save_pretrained(path)
    return path


def hf_t5_logits(folder: Path, encoder_ids, decoder_ids):
    """transformers' T5ForConditionalGeneration logits (numpy float32) for id lists."""
    import torch
    from transformers import T5ForConditionalGeneration

    model = T5ForConditionalGeneration.from_pretrained(folder).eval()
    with torch.no_grad():
        out = model(input_ids=torch.tensor(encoder_ids), decoder_input_ids=torch.tensor(decoder_ids))
    return out.logits.float().numpy()


def llama2_folder(path: Path, seed: int = 0) -> Path:
    """A tiny LlamaForCausalLM with a Llama-2-style SentencePiece tokenizer (BPE with byte
    fallback; unk 0, bos 1, eos 2), saved as transformers saves it (tokenizer.model +
    tokenizer.json)."""
    import json
    import shutil

    import sentencepiece as spm
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    work = path / "_spm"
    work.mkdir()
    (work / "corpus.txt").write_text("\n".join(TEXTS) + "\n")
    spm.SentencePieceTrainer.train(
        input=str(work / "corpus.txt"), model_prefix=str(work / "tokenizer"), vocab_size=300, model_type="bpe",
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, byte_fallback=True, character_coverage=1.0, minloglevel=2,
    )
    shutil.copyfile(work / "tokenizer.model", path / "tokenizer.model")
    shutil.rmtree(work)
    (path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}))
    tok = AutoTokenizer.from_pretrained(path)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=256, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    LlamaForCausalLM(config).eval().save_pretrained(path)
    tok.save_pretrained(path)
    return path
