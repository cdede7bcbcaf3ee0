"""The spec: one strict pydantic schema, the single source of truth for every setting.

Every field carries its default and a one-line meaning; that text feeds `flanctl schema`
and the README's spec reference. Unknown keys are errors everywhere (`extra="forbid"`).
This module imports pydantic only: `validate` and `plan` must not pull in an ML framework.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

API_VERSION = "flanctl/v1"

Family = Literal["palm", "cont-palm", "u-palm", "t5", "preset"]
Precision = Literal["float32", "bfloat16", "float16", "mixed_bfloat16", "mixed_float16"]
Backend = Literal["jax", "tensorflow", "torch"]
DeviceKind = Literal["cpu", "h100", "h200", "a100", "tpu-v4", "tpu-v5e", "tpu-v5p"]
SuiteName = Literal["mmlu", "mmlu-cot", "bbh", "bbh-cot", "tydiqa", "mgsm", "flan-held-out", "builtin", "builtin-cot"]
Attention = Literal["causal", "prefix"]
TemplateFormat = Literal["zero_shot_opts", "zero_shot_noopts", "few_shot_opts", "few_shot_noopts", "cot"]


class Strict(BaseModel):
    """Base of every spec section: unknown keys are errors, values are frozen once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


#: Seeds go to numpy and the backends' RNGs, which take unsigned 32-bit values.
MAX_SEED = 2**32 - 1
#: Longest inputs/targets/sequence length accepted (2**20 tokens): far above any model flanctl
#: builds (the paper: 2048 + 512); a longer one is a typo that would ask for petabytes.
MAX_LENGTH = 2**20


# --------------------------------------------------------------------------- model


class Architecture(Strict):
    """Explicit architecture numbers; any field left out comes from `model.size`."""

    num_layers: int | None = Field(None, gt=0, description="Transformer layers (decoder layers for palm; encoder and decoder layers each for t5).")
    hidden_dim: int | None = Field(None, gt=0, description="Model width d_model.")
    num_heads: int | None = Field(None, gt=0, description="Query attention heads.")
    num_kv_heads: int | None = Field(None, gt=0, description="Key/value heads (1 = multi-query attention, as PaLM).")
    head_dim: int | None = Field(None, gt=0, description="Width of one attention head.")
    ffn_dim: int | None = Field(None, gt=0, description="Feed-forward inner width (SwiGLU / gated-GELU hidden size).")
    vocab_size: int | None = Field(None, gt=0, description="Vocabulary size of the embedding table.")
    max_sequence_length: int | None = Field(None, gt=0, le=MAX_LENGTH, description="Longest sequence the model is built for (palm: rotary, no table).")


class Tokenizer(Strict):
    """Which tokenizer turns text into ids."""

    kind: Literal["byte", "sentencepiece", "preset"] = Field("byte", description="byte: UTF-8 bytes, no download; sentencepiece: a .model file (trained locally if missing); preset: the keras-hub preset's tokenizer.")
    path: str | None = Field(None, description="SentencePiece .model file or keras-hub preset handle/directory; relative paths are from the spec file.")
    vocab_size: int = Field(32000, gt=0, description="Vocabulary size when a SentencePiece model is trained locally on the mixture.")


class ModelSpec(Strict):
    """What to finetune: a model family and size, or a checkpoint/preset."""

    family: Family = Field("palm", description="Model family: palm, cont-palm, u-palm (decoder-only, PaLM architecture), t5 (T5 v1.1 encoder-decoder), preset (any keras-hub CausalLM/Seq2SeqLM).")
    size: str | None = Field(None, description="Catalog size: 8b/62b/540b for the palm families; small/base/large/xl/xxl for t5; tiny/mini sizes for tests and the quickstart.")
    architecture: Architecture = Field(default_factory=Architecture, description="Explicit architecture numbers that override (or replace) the catalog size.")
    attention: Attention = Field("causal", description="causal: every token sees only the tokens before it (PaLM); prefix: a prefix LM (non-causal decoder, as UL2 and U-PaLM's UL2R): each example's inputs attend to each other in both directions, its targets stay causal; generation and scoring treat the prompt as the prefix. Packed examples never see each other either way. prefix is for the palm families only; a checkpoint trained causally continues as a prefix LM with the same weights.")
    checkpoint: str | None = Field(None, description="Directory of weights to start from (a keras-hub preset directory saved by flanctl or keras-hub).")
    preset: str | None = Field(None, description="keras-hub preset handle (e.g. 'gemma_2b_en') or local preset directory; required for family 'preset'.")
    tokenizer: Tokenizer = Field(default_factory=Tokenizer, description="Tokenizer settings.")
    precision: Precision = Field("float32", description="Dtype the weights are stored in (the compute policy is train.precision).")


# --------------------------------------------------------------------------- mixture


class Source(Strict):
    """Where a task's or collection's examples come from."""

    kind: Literal["hf", "local", "builtin"] = Field("hf", description="hf: a Hugging Face hub dataset id; local: a JSONL/CSV/Parquet file, a directory of them, or a save_to_disk folder; builtin: a procedural generator (path: corpus is the built-in pretraining corpus, raw text generated from mixture.seed).")
    path: str = Field(..., description="Hub id, local path (relative to the spec file), or built-in generator name.")
    config: str | None = Field(None, description="Dataset configuration name (hf).")
    split: str = Field("train", description="Split to read.")
    columns: dict[str, str] = Field(default_factory=dict, description="Column mapping from our fields (inputs, targets, options, rationale, answer, task, template_type; text for the pretraining objectives, default column 'text') to the source's column names; a Flan collection's catalog mapping (task: task_name, template_type: template_type) applies to local copies too.")
    revision: str | None = Field(None, description="Hub revision to pin (hf).")
    streaming: bool = Field(False, description="hf only: stream the dataset instead of downloading it whole (a raw-text source for a pretraining objective reads documents up to the cap); rows are kept while their task (and template type) is under the cap and written to the cache once, so only what the caps need is kept, and when `tasks:` lists the tasks reading stops as soon as they are all full.")
    format: Literal["auto", "raw", "flan"] = Field("auto", description="flan: rows already rendered in the Flan 2022 submix format (inputs, targets, task_name, template_type zs_opt/zs_noopt/fs_opt/fs_noopt), used as they are: template_type selects rows to reach the template mix, no second template or few-shot; raw: (inputs, targets) pairs templated by flanctl; auto: flan when the source has a template_type column.")


class TemplateMix(Strict):
    """Share of each template format; normalised to sum to 1."""

    zero_shot_opts: float = Field(0.25, ge=0, description="Zero-shot with answer options shown.")
    zero_shot_noopts: float = Field(0.25, ge=0, description="Zero-shot without answer options.")
    few_shot_opts: float = Field(0.25, ge=0, description="Few-shot with answer options shown.")
    few_shot_noopts: float = Field(0.25, ge=0, description="Few-shot without answer options.")
    cot: float = Field(0.0, ge=0, description="Chain-of-thought: rationale then 'So the answer is X.'")


class Task(Strict):
    """A user task: a source of (inputs, targets) pairs with its own name."""

    name: str = Field(..., min_length=1, description="Task name, unique within the mixture.")
    source: Source = Field(..., description="Where the examples come from.")
    category: str | None = Field(None, description="Task category (for counts in the plan).")
    cap: int | None = Field(None, gt=0, description="Per-task example cap; default is the collection's cap.")
    templates: str | None = Field(None, description="YAML file of templates for this task; default: generic instruction templates.")


class Collection(Strict):
    """A collection of tasks mixed examples-proportionally with a per-task cap."""

    name: str = Field(..., min_length=1, description="muffin, t0_sf, niv2, cot, dialog (the Flan collections), builtin (procedural tasks), or a name of your own.")
    proportion: float = Field(..., ge=0, description="Share of training examples drawn from this collection.")
    cap: int | None = Field(None, gt=0, description="Examples per task before mixing; default: the paper's cap for Flan collections.")
    templates: TemplateMix | None = Field(None, description="Template format mix; default: the Flan collection's own mix.")
    source: Source | None = Field(None, description="Override the catalog's default source of a Flan collection.")
    tasks: list[str] | None = Field(None, description="Only these tasks (default: all of the collection's tasks).")
    exclude_tasks: list[str] = Field(default_factory=list, description="Tasks to leave out (e.g. held-out tasks).")
    user_tasks: list[Task] = Field(default_factory=list, description="Tasks of your own, each with its source.")


class FewShot(Strict):
    """How few-shot exemplars are chosen and joined."""

    min_shots: int = Field(1, ge=0, description="Fewest exemplars in a few-shot prompt.")
    max_shots: int = Field(5, ge=0, description="Most exemplars in a few-shot prompt (equal to min_shots = fixed count).")
    delimiters: list[tuple[str, str]] = Field(
        default_factory=lambda: [("Q: ", "A: "), ("Input: ", "Output: "), ("Question: ", "Answer: ")],
        description="(input prefix, output prefix) pairs; one is drawn at random per example.",
    )
    token_budget: int | None = Field(None, gt=0, le=MAX_LENGTH, description="Drop exemplars until the prompt fits this many tokens (default: mixture.inputs_length).")


class MixtureSpec(Strict):
    """On what: a Flan-style mixture of collections, templates, lengths and packing."""

    collections: list[Collection] = Field(default_factory=list, description="Collections and their proportions.")
    normalize: bool = Field(True, description="Rescale proportions to sum to 1 (a note says so); if false, a sum other than 1 is an error.")
    temperature: float = Field(1.0, gt=0, description="Mixing temperature over tasks within a collection (1 = examples-proportional).")
    few_shot: FewShot = Field(default_factory=FewShot, description="Few-shot exemplar settings.")
    inputs_length: int = Field(2048, gt=0, le=MAX_LENGTH, description="Input tokens kept per example (the paper: 2048).")
    targets_length: int = Field(512, gt=0, le=MAX_LENGTH, description="Target tokens kept per example (the paper: 512).")
    packing: bool = Field(True, description="Pack several examples per sequence with segment ids (attention never crosses examples).")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed of the data order, template and exemplar choices.")
    cache_dir: str | None = Field(None, description="Where tokenized, packed shards are cached (default: .flanctl/cache).")


# --------------------------------------------------------------------------- train


LoraTarget = Literal["query", "key", "value"]


class Lora(Strict):
    """Low-rank adapters (LoRA, Hu et al. 2021) on the attention projections; every other
    weight is frozen. The export merges the adapters into the kernels."""

    rank: int = Field(8, gt=0, description="Rank r of each adapter pair A [in, r], B [r, out] (B starts at zero).")
    alpha: float = Field(16.0, gt=0, description="Scale: the update added to a kernel is (alpha / rank) * A @ B.")
    targets: list[LoraTarget] = Field(default_factory=lambda: ["query", "value"], min_length=1, description="Attention projections that get adapters, in every attention block (T5: encoder self, decoder self and cross attention).")


class TrainSpec(Strict):
    """How: optimizer, schedule, batch, steps, regularisation, checkpoints."""

    optimizer: Literal["adafactor", "adamw"] = Field("adafactor", description="Adafactor (the paper's) or AdamW.")
    learning_rate: float = Field(1e-3, gt=0, description="Peak learning rate.")
    schedule: Literal["constant", "linear", "cosine", "rsqrt"] = Field("constant", description="Learning-rate schedule after warm-up (the paper: constant).")
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up steps.")
    weight_decay: float = Field(0.0, ge=0, description="Decoupled weight decay (AdamW).")
    max_grad_norm: float | None = Field(None, gt=0, description="Clip gradients to this global norm.")
    batch_size: int = Field(32, gt=0, description="Global batch in (packed) sequences per optimizer step.")
    steps: int = Field(1000, gt=0, description="Optimizer steps.")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout rate.")
    precision: Precision = Field("mixed_bfloat16", description="Compute dtype policy.")
    grad_accum: int = Field(1, gt=0, description="Micro-batches accumulated per optimizer step (batch_size must divide evenly).")
    remat: bool = Field(False, description="Rematerialise activations in the backward pass (less memory, ~1/3 more compute).")
    checkpoint_every: int = Field(1000, gt=0, description="Save a checkpoint every N steps (and at the end).")
    keep_checkpoints: int = Field(2, gt=0, description="Most recent checkpoints kept.")
    eval_every: int | None = Field(None, gt=0, description="Also run eval.suites every N steps during training, on the model in memory: scores in metrics.jsonl (eval/<suite>), TensorBoard and evals/step_<n>/, drawn by `flanctl report` against step (default: only before and after).")
    log_every: int = Field(10, gt=0, description="Write metrics every N steps.")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed of initialisation and dropout.")
    lora: Lora | None = Field(None, description="Train low-rank adapters instead of all weights (optimizer state only for them); none = full finetuning.")
    objective: Literal["instruction", "causal_lm", "span_corruption", "ul2"] = Field("instruction", description="instruction: the mixture's (inputs, targets) examples, loss on the targets (the paper's finetuning); causal_lm: raw text, loss on every token, packed (PaLM's pretraining, cont-PaLM); span_corruption: T5's (15% noise in spans of mean 3, one sentinel per span from the top of the model's vocabulary); ul2: UL2's mixture of R/S/X denoisers with mode tokens [NLU]/[S2S]/[NLG] (U-PaLM's UL2R on a palm model: inputs then targets in one sequence, loss on the targets; with model.attention: prefix the inputs attend bidirectionally). The pretraining objectives read the collections' text sources: {kind: builtin, path: corpus}, or a local/hub source's text column.")


# --------------------------------------------------------------------------- distribution


class Mesh(Strict):
    """Device mesh axes: batch is sharded on `data`, heads and feed-forward on `model`."""

    data: int = Field(1, gt=0, description="Size of the data-parallel axis.")
    model: int = Field(1, gt=0, description="Size of the model-parallel axis.")


class Processes(Strict):
    """Processes (hosts) of a multi-controller run."""

    count: int = Field(1, gt=0, description="Number of processes (hosts).")
    devices_per_process: int = Field(1, gt=0, description="Accelerators (or virtual CPU devices) per process.")
    coordinator: str | None = Field(None, description="host:port of process 0 (required when count > 1).")


class DistributionSpec(Strict):
    """Where: backend, device mesh, processes, device kind."""

    backend: Backend = Field("jax", description="Keras backend: jax, tensorflow or torch.")
    mesh: Mesh = Field(default_factory=Mesh, description="Device mesh; data * model must equal processes.count * devices_per_process.")
    processes: Processes = Field(default_factory=Processes, description="Processes of the run.")
    device: DeviceKind = Field("cpu", description="Device kind, for memory capacity and peak FLOP/s in the plan.")
    utilization: float = Field(0.4, gt=0, le=1, description="Assumed model FLOP/s utilisation for the plan's time estimate.")


# --------------------------------------------------------------------------- eval


class SelfConsistency(Strict):
    """Sample several chains of thought and take the majority answer."""

    samples: int = Field(1, gt=0, description="Samples per question (1 = greedy decoding, no voting).")
    temperature: float = Field(0.7, ge=0, description="Sampling temperature.")


class EvalSpec(Strict):
    """How to judge it: held-out suites and their protocol settings."""

    suites: list[SuiteName] = Field(default_factory=list, description="Suites to run after training.")
    shots: dict[str, int] = Field(default_factory=dict, description="Override the paper's shot counts per suite (mmlu 5, bbh 3, tydiqa 1, mgsm 8).")
    self_consistency: SelfConsistency = Field(default_factory=SelfConsistency, description="Self-consistency settings.")
    data_dir: str | None = Field(None, description="Directory with the suites' original files (mmlu/, bbh/, tydiqa/, mgsm/).")
    limit: int | None = Field(None, gt=0, description="Examples per task (for quick looks; the headline needs all).")
    max_decode_length: int | None = Field(None, gt=0, description="Tokens generated per answer, for every suite (raises or lowers the derived budgets). Default: each suite's budget comes from its prompts' longest example answer (BBH-CoT up to 3,616 tokens), so answers are not cut; generation stops at the stop sequences, so a large budget costs only the rows that need it.")
    method: Literal["generate", "loglikelihood"] = Field("generate", description="generate: read each answer from generated text (the paper's protocol); loglikelihood: rank a question's answer options by the model's log-likelihood (suites with options: mmlu, builtin; free-answer questions are still generated, and chain-of-thought suites always generate). Ranking measures what the model knows apart from whether it can say it in the answer format.")
    mmlu_split: Literal["val", "test"] = Field("val", description="MMLU split scored: val (the paper's Table 5 and most tables) or test (Tables 1 and 4).")
    batch_size: int = Field(16, gt=0, description="Prompts decoded together.")
    builtin_tasks: list[str] = Field(default_factory=list, description="Held-out built-in tasks for the `builtin` and `builtin-cot` suites (default: the catalog's held-out set).")


# --------------------------------------------------------------------------- top level


class Spec(Strict):
    """A flanctl spec: what to finetune, on what, how, where, and how to judge it."""

    apiVersion: Literal["flanctl/v1"] = Field(API_VERSION, description="Spec format version.")
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Run name: the run directory is runs/<name>/ (default: the spec file's stem).")
    model: ModelSpec = Field(default_factory=ModelSpec, description="What to finetune.")
    mixture: MixtureSpec = Field(default_factory=MixtureSpec, description="On what.")
    train: TrainSpec = Field(default_factory=TrainSpec, description="How.")
    distribution: DistributionSpec = Field(default_factory=DistributionSpec, description="Where.")
    eval: EvalSpec = Field(default_factory=EvalSpec, description="How to judge it.")
