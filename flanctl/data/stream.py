"""The training stream: grain datasets from tokenized tasks to packed, batched numpy arrays.

    per-task endless source (a new seeded order every epoch)
      -> select_from_datasets with a block selection map (the mixture rates, exact per block)
      -> [process_index::process_count]          (N processes partition the example stream)
      -> compact features (decoder-only: one array; encoder-decoder: two)
      -> grain FirstFitPackIterDataset            (segment ids and positions per example)
      -> batch                                    (per-process batch)
      -> BatchUnpacker                            (the seam's keys: targets, loss mask, decoder inputs,
                                                   prefix flags for a prefix-LM model)

Every stage is a grain dataset, so the iterator's `get_state()`/`set_state()` resumes at
exactly the batch where it stopped.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np

from flanctl.errors import FlanctlError

STATE_VERSION = 1


def row_layout(spec, base_dir=None, model=None) -> tuple[bool, bool]:
    """(encoder_decoder, packed) of the rows: from the plan's resolved model when given, else
    decided by the plan room from the spec (one decision for plan, data and train)."""
    if model is not None:
        return bool(model.encoder_decoder), bool(model.packed)
    from flanctl.plan.make import model_kind

    return model_kind(spec, Path(base_dir or "."))


class BlockSelectionMap:
    """Global index -> (task, index within task) with each task's share exact per block.

    Task t's cumulative count at block boundary b is floor(rate_t * B * b + phase_t), so over
    any stretch of blocks a task gets its rate up to one example; within a block the order is
    a seeded permutation. O(1) per lookup (a block's tables are built once, with numpy), unlike
    a loop over tasks per element, which matters at NIV2 scale (1,500+ tasks).
    """

    def __init__(self, rates: list[float], seed: int, block: int | None = None):
        r = np.asarray(rates, dtype=np.float64)
        if (r <= 0).any():
            raise FlanctlError("every task in the mixture needs a positive rate")
        self._r = r / r.sum()
        self._seed = seed
        self._B = block or max(4096, 64 * len(r))
        self._phase = np.random.default_rng([seed, 7]).random(len(r))
        self._blocks: OrderedDict[int, tuple[int, np.ndarray, np.ndarray]] = OrderedDict()
        self._last: tuple[int, int, np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return sys.maxsize

    def _cum(self, b: int) -> np.ndarray:
        # phase in [0, 1): cumulative count is 0 at b = 0 and rate * B * b within one after
        return np.floor(self._r * self._B * b + self._phase).astype(np.int64)

    def _start(self, b: int) -> int:
        return int(self._cum(b).sum())

    def _block(self, b: int):
        hit = self._blocks.get(b)
        if hit is not None:
            return hit
        lo, hi = self._cum(b), self._cum(b + 1)
        counts = hi - lo
        order = np.repeat(np.arange(len(counts)), counts)
        order = np.random.default_rng([self._seed, b]).permutation(order)
        # rank of each position among the same task's positions in this block
        sort = np.argsort(order, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        ranks = np.empty(len(order), dtype=np.int64)
        ranks[sort] = np.arange(len(order)) - np.repeat(starts, counts)
        entry = (int(lo.sum()), order, lo[order] + ranks)
        self._blocks[b] = entry
        if len(self._blocks) > 8:
            self._blocks.popitem(last=False)
        return entry

    def __getitem__(self, index: int) -> tuple[int, int]:
        last = self._last
        if last is not None and last[0] <= index < last[1]:  # the common case: same block as before
            k = index - last[0]
            return int(last[2][k]), int(last[3][k])
        b = index // self._B
        while self._start(b) > index:
            b -= 1
        while self._start(b + 1) <= index:
            b += 1
        start, order, within = self._block(b)
        self._last = (start, start + len(order), order, within)
        k = index - start
        return int(order[k]), int(within[k])


class _ShuffledTask:
    """One tokenized task as an endless grain data source: a fresh seeded order every epoch.

    Index k is example perm_e[k % n] with e = k // n. The permutation of an epoch is built
    once with numpy (grain's per-index `shuffle` costs ~0.2 ms a lookup here, the whole
    pipeline's largest cost), and the last few are kept.
    """

    def __init__(self, tt, task_id: int, seed: int):
        self._tt = tt
        self._id = task_id
        self._seed = seed
        self._n = len(tt)
        self._perms: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return sys.maxsize

    def _perm(self, epoch: int) -> np.ndarray:
        p = self._perms.get(epoch)
        if p is None:
            p = np.random.default_rng([self._seed, self._id, epoch]).permutation(self._n)
            self._perms[epoch] = p
            if len(self._perms) > 2:
                self._perms.popitem(last=False)
        return p

    def __getitem__(self, k: int) -> dict:
        epoch, pos = divmod(int(k), self._n)
        i = int(self._perm(epoch)[pos])
        a, b = self._tt.example(i)
        ex = {"inputs": a, "targets": b, "task": self._id, "index": i, "draw": int(k)}
        ends = getattr(self._tt, "ends", None)  # raw-text pieces only (not pre-rendered Flan shards)
        if ends is not None:  # does this piece end its document?
            ex["end"] = bool(ends[i])
        return ex


class DecoderFeatures:
    """Decoder-only: [bos] inputs targets eos in one sequence; loss on the targets and eos.

    Only one array is packed per example, `token_ids * 2 + loss bit` (a loss bit for the
    token each position predicts): grain's packer cost grows with the number of features, and
    next-token targets are recovered exactly after packing from the segment ids (`BatchUnpacker`).
    The prefix flags of a prefix LM come from the same bits: an example's prefix ([bos] inputs)
    ends at its first loss bit (the last input token, which predicts the first target).
    """

    def __init__(self, bos_id: int | None, eos_id: int):
        self._pre = np.asarray([] if bos_id is None else [bos_id], np.int32)
        self._eos = np.asarray([eos_id], np.int32)

    def __call__(self, ex: dict) -> dict:
        prompt_len = len(self._pre) + len(ex["inputs"])
        ids = np.concatenate([self._pre, ex["inputs"], ex["targets"]])  # the eos is only ever a target
        code = ids * 2
        code[prompt_len - 1:] += 1  # position j predicts token j+1: loss where that is a target token or eos
        return {"token_ids": code}


class EncoderDecoderFeatures:
    """Encoder-decoder: encoder gets inputs+eos, the decoder predicts targets+eos.

    Packed as two arrays; decoder inputs (targets shifted right within each example, starting
    from `start_id`) and the loss mask are rebuilt after packing by `BatchUnpacker`.
    """

    def __init__(self, eos_id: int):
        self._eos = np.asarray([eos_id], np.int32)

    def __call__(self, ex: dict) -> dict:
        return {"encoder_token_ids": np.concatenate([ex["inputs"], self._eos]),
                "targets": np.concatenate([ex["targets"], self._eos])}


def _length_struct(enc_dec: bool, mix) -> dict[str, int]:
    if enc_dec:
        return {"encoder_token_ids": mix.inputs_length, "targets": mix.targets_length}
    return {"token_ids": mix.inputs_length + mix.targets_length}


def prefix_flags(segment_ids: np.ndarray, loss_bits: np.ndarray) -> np.ndarray:
    """Int32 `[B, L]`: 1 on each packed example's prefix, the positions up to and including its
    first loss position, else 0 (padding included).

    For `[bos] inputs targets` that is `[bos] inputs`: the last input token predicts the first
    target and sees only inputs. No position with a loss bit other than that one is ever in the
    prefix, so a prefix LM cannot see a token it is asked to predict. A causal-LM example (loss
    from its first token) has a one-token prefix, which attends as causal attention does.
    """
    seg = np.asarray(segment_ids)
    loss = np.asarray(loss_bits).astype(np.int64)
    length = seg.shape[1]
    start = np.ones(seg.shape, dtype=bool)
    start[:, 1:] = seg[:, 1:] != seg[:, :-1]
    before = np.cumsum(loss, axis=1) - loss  # loss bits strictly before each position (row-wide)
    first = np.maximum.accumulate(np.where(start, np.arange(length)[None, :], 0), axis=1)  # its example's start
    within = before - np.take_along_axis(before, first, axis=1)  # loss bits before it in its own example
    return ((within == 0) & (seg > 0)).astype(np.int32)


class BatchUnpacker:
    """Packed compact batch -> the seam's batch dict (vectorised over the whole batch).

    `prefix=True` (a decoder-only model with `model.attention: prefix`) adds `prefix_mask`,
    the per-token prefix flags of `prefix_flags`."""

    def __init__(self, enc_dec: bool, eos_id: int, start_id: int = 0, prefix: bool = False):
        self._enc_dec = enc_dec
        self._eos = eos_id
        self._start = start_id
        self._prefix = prefix and not enc_dec

    @staticmethod
    def _next_same(seg: np.ndarray) -> np.ndarray:
        """True where position j+1 belongs to the same example as position j."""
        same = np.zeros_like(seg, dtype=bool)
        same[:, :-1] = (seg[:, 1:] == seg[:, :-1]) & (seg[:, :-1] > 0)
        return same

    def __call__(self, b: dict) -> dict:
        if self._enc_dec:
            dseg = b["targets_segment_ids"].astype(np.int32)
            tgt = b["targets"].astype(np.int32)
            prev_same = np.zeros_like(dseg, dtype=bool)
            prev_same[:, 1:] = self._next_same(dseg)[:, :-1]
            shifted = np.zeros_like(tgt)
            shifted[:, 1:] = tgt[:, :-1]
            dec = np.where(prev_same, shifted, np.where(dseg > 0, self._start, 0)).astype(np.int32)
            return {
                "encoder_token_ids": b["encoder_token_ids"].astype(np.int32),
                "encoder_segment_ids": b["encoder_token_ids_segment_ids"].astype(np.int32),
                "encoder_positions": b["encoder_token_ids_positions"].astype(np.int32),
                "decoder_token_ids": dec,
                "decoder_segment_ids": dseg,
                "decoder_positions": b["targets_positions"].astype(np.int32),
                "targets": tgt,
                "loss_mask": (dseg > 0).astype(np.float32),
            }
        code = b["token_ids"]
        seg = b["token_ids_segment_ids"].astype(np.int32)
        ids = (code >> 1).astype(np.int32)
        nxt = np.zeros_like(ids)
        nxt[:, :-1] = ids[:, 1:]
        targets = np.where(self._next_same(seg), nxt, np.where(seg > 0, self._eos, 0)).astype(np.int32)
        out = {
            "token_ids": ids,
            "segment_ids": seg,
            "positions": b["token_ids_positions"].astype(np.int32),
            "targets": targets,
            "loss_mask": (code & 1).astype(np.float32),
        }
        if self._prefix:
            out["prefix_mask"] = prefix_flags(seg, code & 1)
        return out


class _PadOne:
    """No packing: one example per row, padded, segment id 1 on its tokens (grain's packed names)."""

    def __init__(self, lengths: dict[str, int]):
        self._lengths = lengths

    def __call__(self, el: dict) -> dict:
        out = {}
        for k, L in self._lengths.items():
            v = el[k]
            pad = np.zeros(L, dtype=v.dtype)
            pad[: len(v)] = v
            seg = np.zeros(L, np.int32)
            seg[: len(v)] = 1
            pos = np.zeros(L, np.int32)
            pos[: len(v)] = np.arange(len(v))
            out[k], out[f"{k}_segment_ids"], out[f"{k}_positions"] = pad, seg, pos
        return out


class TrainStream:
    """Iterator of numpy batch dicts with `get_state()`/`set_state()` for exact resume."""

    def __init__(self, iterator, fingerprint: str, tasks: list[str], batch_size: int):
        self._it = iterator
        self.fingerprint = fingerprint
        self.tasks = tasks
        self.batch_size = batch_size

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        return next(self._it)

    def get_state(self) -> dict:
        return {"version": STATE_VERSION, "fingerprint": self.fingerprint, "iterator": self._it.get_state()}

    def set_state(self, state: dict) -> None:
        if state.get("version") != STATE_VERSION or state.get("fingerprint") != self.fingerprint:
            raise FlanctlError(
                "the saved data iterator state belongs to a different mixture (templates, tokenizer, lengths, seed, "
                "batch or process layout changed); resume with the spec the run was started with"
            )
        self._it.set_state(state["iterator"])


def packing_bins(batch_per_process: int) -> int:
    """Bins first-fit packing fills at once: more bins, less padding (and longer first batch)."""
    return max(128, 2 * batch_per_process)


def build_example_dataset(tokenized, rates, seed: int, process_index: int, process_count: int):
    """The mixed, sharded MapDataset of examples (before features and packing)."""
    import grain.python as gp

    empty = [tt.name for tt in tokenized if len(tt) == 0]
    if empty:
        raise FlanctlError(f"task(s) {', '.join(empty)} have no examples; remove them from the mixture")
    parents = [gp.MapDataset.source(_ShuffledTask(tt, i, seed)) for i, tt in enumerate(tokenized)]
    mixed = gp.MapDataset.select_from_datasets(parents, BlockSelectionMap(rates, seed))
    return mixed[process_index::process_count]


def model_vocab(spec, model=None, base_dir=None) -> int | None:
    """The model's vocabulary size (span sentinels come from its top): the plan's resolved
    model's (given, or resolved here by the plan room when the data room runs without a plan:
    a checkpoint's own, grown by `model.architecture.vocab_size`), else the catalog's."""
    if model is None and base_dir is not None:
        from flanctl.plan.make import resolve_model

        try:
            model = resolve_model(spec, Path(base_dir), [])
        except FlanctlError:
            model = None
    arch = getattr(model, "architecture", None) if model is not None else None
    if arch and arch.get("vocab_size"):
        return int(arch["vocab_size"])
    from flanctl.catalog.models import resolve_architecture

    try:
        return int(resolve_architecture(spec.model)["vocab_size"])
    except (ValueError, KeyError, TypeError):
        return None


def objective_layout_for(spec, tokenizer, base_dir=None, model=None):
    """The pretraining objective's layout for this spec (None for `instruction`)."""
    objective = getattr(spec.train, "objective", "instruction")
    if objective == "instruction":
        return None
    from flanctl.data.objectives import objective_layout

    enc_dec, _ = row_layout(spec, base_dir, model)
    return objective_layout(objective, tokenizer, spec.mixture, enc_dec, model_vocab(spec, model, base_dir))


def build_stream_from_tokenized(tokenized, rates, spec, tokenizer, process_index=0, process_count=1, fingerprint="", base_dir=None, model=None) -> TrainStream:
    import grain.python as gp
    from grain.experimental import FirstFitPackIterDataset

    mix = spec.mixture
    batch = spec.train.batch_size
    if process_count < 1 or not 0 <= process_index < process_count:
        raise FlanctlError(f"process_index {process_index} is not in 0..{process_count - 1}")
    if batch % process_count:
        raise FlanctlError(f"train.batch_size {batch} does not divide over {process_count} processes; make it a multiple")
    per_process = batch // process_count
    enc_dec, packing = row_layout(spec, base_dir, model)
    if tokenizer.eos_id is None:
        raise FlanctlError("the tokenizer has no end-of-sequence id; flanctl needs one to end targets")
    features = EncoderDecoderFeatures(tokenizer.eos_id) if enc_dec else DecoderFeatures(tokenizer.bos_id, tokenizer.eos_id)
    layout = objective_layout_for(spec, tokenizer, base_dir, model)
    if layout is not None:  # raw-text pieces -> causal LM, span corruption or UL2 examples
        from flanctl.data.objectives import ObjectiveFeatures

        features = ObjectiveFeatures(layout, features, mix.seed, tokenizer.bos_id)
    ds = build_example_dataset(tokenized, rates, mix.seed, process_index, process_count).map(features)
    it_ds = ds.to_iter_dataset(gp.ReadOptions(num_threads=0, prefetch_buffer_size=0))
    lengths = _length_struct(enc_dec, mix)
    if packing:
        it_ds = FirstFitPackIterDataset(it_ds, length_struct=lengths, num_packing_bins=packing_bins(per_process),
                                        seed=mix.seed, shuffle_bins=True)
    else:
        it_ds = it_ds.map(_PadOne(lengths))
    prefix = getattr(spec.model, "attention", "causal") == "prefix"
    it_ds = it_ds.batch(per_process, drop_remainder=True).map(BatchUnpacker(enc_dec, tokenizer.eos_id, tokenizer.pad_id, prefix))
    it = iter(it_ds)
    return TrainStream(it, f"{fingerprint}:{process_index}/{process_count}:{batch}:{int(packing)}:{int(enc_dec)}",
                       [tt.name for tt in tokenized], per_process)


def build_train_stream(spec, base_dir, tokenizer, process_index: int = 0, process_count: int = 1, model=None) -> TrainStream:
    """The seam the trainer uses: spec -> an iterator of numpy batches (see docs/INTERFACES.md).

    `model` is the plan's resolved model (its `encoder_decoder` and `packed` decide the rows)."""
    import hashlib

    from flanctl.data.mixture import realize
    from flanctl.data.tokenized import tokenize_tasks

    mixture = realize(spec, Path(base_dir))
    layout = objective_layout_for(spec, tokenizer, base_dir, model)
    # pre-rendered Flan sources: each process builds its share of the shards (a shared cache folder), then reads them all
    tokenized = tokenize_tasks(mixture, tokenizer, spec.mixture, Path(base_dir), process_index=process_index, process_count=process_count,
                               text_length=layout.text_length if layout is not None else None)
    fp = hashlib.sha256("|".join(f"{t.name}:{t.rate:.12g}:{len(tt)}:{tt.tokens}" for t, tt in zip(mixture.tasks, tokenized)).encode())
    fp.update(f"{tokenizer.fingerprint}:{spec.mixture.seed}:{spec.mixture.inputs_length}:{spec.mixture.targets_length}".encode())
    if layout is not None:
        fp.update(f":{layout.objective}:{layout.text_length}:{layout.sentinel_top}".encode())
    return build_stream_from_tokenized(tokenized, [t.rate for t in mixture.tasks], spec, tokenizer,
                                       process_index, process_count, fingerprint=fp.hexdigest()[:16], base_dir=base_dir, model=model)
