"""The training loop: plan -> model, optimizer, stream -> steps, metrics, checkpoints, export.

Import this only after `KERAS_BACKEND` is set (`flanctl.train.run_training` does that).
Each optimizer step takes one batch from the stream and feeds it to Keras's compiled train
step (`train_on_batch`) in `grad_accum` micro-batches; the optimizer accumulates their
gradients and applies their mean once. The loss of a step is cross-entropy summed over the
step's target tokens divided by their count, however the tokens fall into micro-batches:
each micro-batch's loss is a plain sum (`token_sum_loss`) with sample weights
`loss_mask * grad_accum / total_target_tokens` (`step_weights`), so the optimizer's mean of
the micro-batch gradients is exactly the gradient of the whole batch at once.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Callable, Iterator

import keras
import numpy as np

from flanctl.backends import Placement, get_backend
from flanctl.errors import FlanctlError
from flanctl.plan import Plan
from flanctl.runtime import setup_process
from flanctl.runs.interrupts import Interrupted, StopRequest, graceful_interrupts
from flanctl.train.checkpoints import restore_latest, save_checkpoint
from flanctl.train.metrics_log import MetricsLog
from flanctl.train.optimizers import build_optimizer
from flanctl.train.progress import training_progress
from flanctl.train.throughput import mfu, peak_flops

LABEL_KEYS = ("targets", "loss_mask")


def masked_loss() -> keras.losses.Loss:
    """Token cross-entropy averaged over tokens whose sample weight (loss_mask) is 1."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")


def token_sum_loss() -> keras.losses.Loss:
    """Token cross-entropy times sample weight, summed (the trainer's loss; see `step_weights`).

    A sum needs no per-replica rescaling: Keras divides only mean reductions by the number of
    tf.distribute replicas, and the replicas' gradients are summed.
    """
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")


def step_weights(loss_mask: np.ndarray, accum: int, step_tokens: float) -> np.ndarray:
    """Sample weights of one micro-batch: `loss_mask * accum / step_tokens`.

    `step_tokens` is the number of target tokens in the whole optimizer step (every
    micro-batch, every process). With `token_sum_loss` each micro-batch's loss is its share
    of the step's token mean times `accum`; the optimizer averages the `accum` micro-batch
    gradients, so the update uses the gradient of (sum of masked token losses) / step_tokens,
    as if the whole batch had been one. A step without target tokens has loss 0.
    """
    return (np.asarray(loss_mask, np.float32) * np.float32(accum / max(float(step_tokens), 1.0))).astype(np.float32)


def split_batch(batch: dict) -> tuple[dict, np.ndarray, np.ndarray]:
    """(model inputs, targets, loss_mask) from a stream batch."""
    features = {k: v for k, v in batch.items() if k not in LABEL_KEYS}
    return features, batch["targets"], batch["loss_mask"]


def micro_batches(batch: dict, accum: int) -> list[dict]:
    rows = len(batch["targets"])
    if rows % accum:
        raise FlanctlError(f"train.grad_accum: {accum} does not divide the per-process batch of {rows} rows; change train.batch_size or grad_accum")
    size = rows // accum
    return [{k: v[i * size : (i + 1) * size] for k, v in batch.items()} for i in range(accum)]


def model_family(plan: Plan):
    """The plan's model family (flanctl.models.families), by its family name and kind."""
    from flanctl.models import get_family

    return get_family(plan.model.family, plan.model.encoder_decoder)


def _default_model(plan: Plan) -> keras.Model:
    """The model to finetune, as the trainer fits it: the family's model loaded from the plan's
    checkpoint / preset (an absolute folder or a keras-hub handle, resolved by the plan), or
    built fresh from the architecture; either way attending as `model.attention`."""
    family = model_family(plan)
    attention = plan.spec.model.attention
    if plan.model.weights:
        model, _tokenizer = family.load(plan.model.weights, dropout=plan.spec.train.dropout)
        _check_spec_tokenizer(plan)
        model = family.as_planned(model, attention, (plan.model.architecture or {}).get("vocab_size"), plan.spec.train.seed)
        return _with_lora(plan, family.trainable(model))
    return _with_lora(plan, family.build(plan.model.architecture, dropout=plan.spec.train.dropout, attention=attention))


def _check_spec_tokenizer(plan: Plan) -> None:
    """Before any step: the ids the spec's tokenizer feeds must be the Hugging Face
    checkpoint's own on a probe text (a one-line error otherwise)."""
    from flanctl.models.hf_io import is_hf_folder
    from flanctl.models.hf_probe import check_tokenizer

    if is_hf_folder(plan.model.weights):
        check_tokenizer(plan.model.weights, plan_tokenizer(plan),
                        fix="point model.tokenizer at the checkpoint's own tokenizer (its spiece.model, or kind: preset)")


def _with_lora(plan: Plan, model: keras.Model) -> keras.Model:
    """`train.lora`: adapters on the attention projections and every other weight frozen, so
    the optimizer (built over trainable variables) keeps state only for the adapters."""
    lora = plan.spec.train.lora
    if lora is not None:
        from flanctl.models.lora import enable_lora

        enable_lora(model, lora.rank, lora.alpha, lora.targets)
    return model


def plan_tokenizer(plan: Plan):
    """The plan's tokenizer; a missing SentencePiece model is trained on the mixture."""
    from flanctl.data import tokenizer_for_spec

    return tokenizer_for_spec(plan.spec, plan.base_dir)


def _default_stream(plan: Plan, placement: Placement) -> Iterator[dict]:
    from flanctl.data import build_train_stream

    return build_train_stream(plan.spec, plan.base_dir, plan_tokenizer(plan), process_index=placement.process_index,
                              process_count=placement.process_count, model=plan.model)


class Trainer:
    """One training job. `model_factory` / `stream_factory` default to the models and data rooms."""

    def __init__(
        self,
        plan: Plan,
        run,
        console=None,
        model_factory: Callable[[Plan], keras.Model] | None = None,
        stream_factory: Callable[[Plan, Placement], Iterator[dict]] | None = None,
        export: bool = True,
        on_step: Callable[[int, keras.Model], dict | None] | None = None,
    ):
        self.plan, self.run, self.console = plan, run, console
        self.spec = plan.spec
        self.cfg = plan.spec.train
        self.model_factory = model_factory or _default_model
        self.stream_factory = stream_factory or _default_stream
        self.export = export
        self.on_step = on_step

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        dist = self.spec.distribution
        backend = get_backend(dist.backend)
        if keras.backend.backend() != dist.backend:
            raise FlanctlError(f"keras runs on {keras.backend.backend()}, the plan asks for {dist.backend}; run through flanctl.train.run_training")
        # Processes and mesh first: multi-process jax must start before any device is touched.
        self.placement = backend.setup(dist.model_dump(mode="json"), self._layout_rules)
        keras.utils.set_random_seed(self.cfg.seed)
        setup_process(dist.backend, precision=self.cfg.precision)
        self.ckpt_format = backend.checkpoint_format(self.placement)
        with self.placement.scope():
            self.model = self.model_factory(self.plan)
            self.optimizer = build_optimizer(self.cfg)
            self.model.compile(optimizer=self.optimizer, loss=token_sum_loss(), weighted_metrics=[])
            # Optimizer slots must exist before a checkpoint can be restored into them.
            self.model.optimizer.build(self.model.trainable_variables)
        self.optimizer = self.model.optimizer  # compile may wrap it (loss scaling under mixed_float16)
        self.stream = self.stream_factory(self.plan, self.placement)
        self.params = int(self.model.count_params())
        if self.cfg.remat:
            self._apply_remat()
        self.peak = peak_flops(self.plan)

    # ------------------------------------------------------------------ pieces
    def _layout_rules(self):
        """The family's sharding rules (the backend asks only for a model axis above 1)."""
        return model_family(self.plan).layout_rules()

    def _apply_remat(self) -> None:
        """Recompute each transformer block's activations in the backward pass (train.remat)."""
        from flanctl.models.remat import enable_remat, remat_support

        refused = remat_support(keras.backend.backend())
        if refused:
            self._say(f"note: {refused}")
        elif enable_remat(self.model) == 0:
            self._say(
                "note: train.remat is not applied: this model has no palm/t5 transformer blocks "
                "(keras-hub presets other than T5 keep their activations)"
            )

    def _say(self, text: str) -> None:
        if self.placement.is_chief:
            if self.console is not None:
                self.console.print(text)
            else:
                print(text, flush=True)

    def _resume(self) -> tuple[int, int]:
        restored = restore_latest(self.run, self.model, self.optimizer, self.placement, say=self._say)
        if restored is None:
            return 0, 0
        step, path, meta, data_state = restored
        if data_state is None:
            raise FlanctlError(
                f"{path}: saved by {meta.get('process_count', 1)} process(es), resumed by {self.placement.process_count}; "
                "resume with the same distribution.processes.count"
            )
        self.stream.set_state(data_state)
        self._say(f"resuming from step {step} ({path})")
        return int(meta["step"]), int(meta.get("tokens", 0))

    def _save(self, step: int, tokens: int) -> Path:
        path = save_checkpoint(
            self.run.checkpoints_dir,
            step,
            self.model,
            self.optimizer,
            self.stream.get_state(),
            {"tokens": tokens, "time": time.time()},
            self.placement,
            self.ckpt_format,
            self.cfg.keep_checkpoints,
        )
        if self.placement.is_chief:
            self.run.update_state(status="training", step=step, checkpoint=str(path))
        return path

    def train_step(self, batch: dict) -> float:
        """One optimizer step over `grad_accum` micro-batches; returns the step's loss, the mean
        over all its target tokens (of every process), whatever the micro-batch split."""
        accum = self.cfg.grad_accum
        step_tokens = self.placement.sum_over_processes(float(np.sum(batch["loss_mask"])))
        losses = []
        for micro in micro_batches(batch, accum):
            features, targets, mask = split_batch(micro)
            weights = step_weights(mask, accum, step_tokens)
            if self.placement.train_step is not None:
                losses.append(self.placement.train_step(self.model, features, targets, weights))
                continue
            logs = self.model.train_on_batch(features, targets, sample_weight=weights, return_dict=True)
            losses.append(float(logs["loss"]))
        return float(np.mean(losses))

    def current_lr(self, step: int) -> float:
        """The learning rate the optimizer used at optimizer step `step` (0-based)."""
        inner = getattr(self.optimizer, "inner_optimizer", self.optimizer)
        lr = inner._learning_rate
        if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
            lr = lr(step * self.cfg.grad_accum)
        return float(keras.ops.convert_to_numpy(lr))

    def _record(self, step: int, loss: float, tokens: int, window_tokens: int, window_s: float, started: float) -> dict:
        """One metrics.jsonl line; throughput over the steps since the last log line."""
        tps = window_tokens / max(window_s, 1e-9)
        return {
            "step": step,
            "loss": loss,
            "lr": self.current_lr(step - 1),
            "tokens": tokens,
            "tokens_per_s": tps,
            "mfu": mfu(self.params, tps, self.peak),
            "time": time.time() - started,
        }

    # ------------------------------------------------------------------ loop
    def run_loop(self) -> dict:
        """Resume, train to `train.steps`, checkpoint, export; returns the final metrics."""
        total = self.cfg.steps
        log_every, ckpt_every = self.cfg.log_every, self.cfg.checkpoint_every
        step, tokens = self._resume()
        chief = self.placement.is_chief
        metrics = MetricsLog(self.run.metrics_path, self.run.tb_dir, resume_step=step) if chief else None
        if chief:
            self.run.update_state(status="training", step=step)
        record: dict = {"step": step, "tokens": tokens}
        last_ckpt = None
        window_start, window_tokens = time.perf_counter(), 0
        started = time.time()
        progress = training_progress(self.console if chief else None)
        # Ctrl-C: stop at the next step boundary with a checkpoint (one process only: the
        # processes of a multi-host run would have to agree on the step first).
        stopping = graceful_interrupts() if self.placement.process_count == 1 else contextlib.nullcontext(StopRequest())
        try:
            with stopping as stop, progress if chief else _Quiet():
                task = progress.add_task("train", total=total, completed=step, loss=float("nan"), tps=0.0, mfu=0.0)
                while step < total:
                    try:
                        batch = next(self.stream)
                    except StopIteration:
                        raise FlanctlError(f"the data stream ended after {step} steps; add data or lower train.steps") from None
                    loss = self.train_step(batch)
                    if not np.isfinite(loss):
                        raise FlanctlError(f"loss is {loss} at step {step + 1}; lower train.learning_rate or set train.max_grad_norm")
                    step += 1
                    batch_tokens = int(np.prod(batch["targets"].shape)) * self.placement.process_count
                    tokens += batch_tokens
                    window_tokens += batch_tokens
                    if step % log_every == 0 or step == total:
                        record = self._record(step, loss, tokens, window_tokens, time.perf_counter() - window_start, started)
                        if metrics:
                            metrics.log(record)
                        progress.update(task, completed=step, loss=loss, tps=record["tokens_per_s"], mfu=record["mfu"])
                        window_start, window_tokens = time.perf_counter(), 0
                    else:
                        progress.update(task, completed=step, loss=loss)
                    if step % ckpt_every == 0 or step == total:
                        t0 = time.perf_counter()
                        last_ckpt = self._save(step, tokens)
                        window_start += time.perf_counter() - t0  # checkpoint time is not training throughput
                    if self.on_step is not None and self.cfg.eval_every and step % self.cfg.eval_every == 0:
                        t0 = time.perf_counter()
                        scores = self.on_step(step, self.model)
                        if scores and metrics:
                            metrics.log_evals(step, scores)
                        window_start += time.perf_counter() - t0  # nor is eval time
                    if stop.requested and step < total:
                        self._stop_interrupted(step, tokens, last_ckpt)
        finally:
            if metrics:
                metrics.close()
        if last_ckpt is None:
            latest = self.run.latest_checkpoint()
            last_ckpt = latest[1] if latest else None
        result = {**record, "step": step, "tokens": tokens, "params": self.params, "checkpoint": str(last_ckpt)}
        if self.export and chief:
            exported = self._export()
            result["export"] = str(exported) if exported else None
        if chief:
            self.run.update_state(status="completed", step=step, checkpoint=str(last_ckpt), train_metrics=result)
        self.placement.barrier("train-done")
        return result

    def _stop_interrupted(self, step: int, tokens: int, last_ckpt: Path | None) -> None:
        """After Ctrl-C: checkpoint this step (unless just written), record it, raise `Interrupted`."""
        if last_ckpt is None or last_ckpt.name != f"step_{step}":
            last_ckpt = self._save(step, tokens)
        self.run.update_state(status="interrupted", step=step, checkpoint=str(last_ckpt))
        raise Interrupted(f"interrupted at step {step} of {self.cfg.steps}; checkpoint {last_ckpt} written; run the same `flanctl apply` again to resume")

    def _export(self) -> Path | None:
        """Save the final model as a keras-hub preset directory in `export/` (tmp name, then rename)."""
        import shutil

        if self.placement.process_count > 1:
            # Sharded weights are not all on process 0; the orbax checkpoint has them.
            self._say("export: skipped for a multi-process run; reload the last checkpoint on one host to export")
            return None
        final = self.run.export_dir
        tmp = final.with_name("export.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        # The tokenizer travels with the model (a SentencePiece file is copied into the preset).
        model_family(self.plan).export(self.model, tmp, tokenizer=plan_tokenizer(self.plan))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        return final


class _Quiet:
    """Stands in for the progress context on processes other than 0."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def train(plan: Plan, run, console=None, **kwargs) -> dict:
    """Set up and run one job (see `Trainer`); returns the final metrics."""
    trainer = Trainer(plan, run, console, **kwargs)
    trainer.setup()
    return trainer.run_loop()
