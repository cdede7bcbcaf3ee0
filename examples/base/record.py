"""The shipped pretrained base (examples/base/): compare a pretraining run with it, or record it.

`make pretrain` runs `flanctl apply examples/pretrain.yaml` and then this script, which compares
the run's export with the shipped base and says whether the weights are identical (same
digest: `flanctl.models.preset_io.weights_digest`, over the arrays, not the HDF5 file):

    python examples/base/record.py runs/pretrain            # compare (changes nothing)
    python examples/base/record.py runs/pretrain --write    # maintainers: replace examples/base/

`--write` copies the export (weights, config, tokenizer) into examples/base/ and writes
PROVENANCE.json: the exact command, the spec and its hash, the seeds, steps, final loss,
tokens, wall time, and the digests of the weights and the tokenizer. A test checks that the
shipped files still match PROVENANCE.json and that examples/pretrain.yaml is the spec that
made them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import platform
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
KEEP = ("config.json", "task.json", "metadata.json", "flanctl.json", "model.weights.h5", "assets")


def provenance(run: Path) -> dict:
    """What made the run's export, read from the run directory."""
    from flanctl import __version__
    from flanctl.data.corpus import CORPUS_VERSION, WORLD_SEED
    from flanctl.models.preset_io import weights_digest
    from flanctl.plan import Plan

    plan = Plan.load(run / "plan.json")
    state = json.loads((run / "state.json").read_text())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    last = rows[-1] if rows else {}
    spec = plan.spec
    tok = run / "export" / "assets" / "tokenizer" / "spm.model"
    return {
        "command": "make pretrain  (= flanctl apply examples/pretrain.yaml)",
        "spec": "examples/pretrain.yaml",
        "spec_hash": plan.spec_hash,
        "mixture_seed": spec.mixture.seed,
        "train_seed": spec.train.seed,
        "corpus_version": CORPUS_VERSION,
        "world_seed": WORLD_SEED,
        "steps": state.get("step"),
        "final_loss": last.get("loss"),
        "tokens": last.get("tokens"),
        "train_seconds": round(last.get("time", 0.0), 1),
        "parameters": plan.model.params,
        "weights_sha256": weights_digest(run / "export"),
        "tokenizer_sha256": hashlib.sha256(tok.read_bytes()).hexdigest() if tok.is_file() else None,
        "flanctl_version": __version__,
        "machine": f"{platform.machine()}, {platform.system()}, Python {platform.python_version()}",
        "recorded": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="The pretraining run directory (runs/pretrain).")
    ap.add_argument("--write", action="store_true", help="Replace examples/base/ with this run's export.")
    args = ap.parse_args(argv)
    run = args.run if args.run.is_absolute() else Path.cwd() / args.run
    if not (run / "export" / "model.weights.h5").is_file():
        print(f"error: {run}/export has no model.weights.h5; run `flanctl apply examples/pretrain.yaml` to the end first",
              file=sys.stderr)
        return 1
    record = provenance(run)
    shipped_file = HERE / "PROVENANCE.json"
    shipped = json.loads(shipped_file.read_text()) if shipped_file.is_file() else {}
    if args.write:
        for name in KEEP:
            src, dst = run / "export" / name, HERE / name
            if dst.is_dir():
                shutil.rmtree(dst)
            if src.is_dir():
                shutil.copytree(src, dst)
            elif src.is_file():
                shutil.copy2(src, dst)
        shipped_file.write_text(json.dumps(record, indent=2) + "\n")
        print(f"examples/base/ replaced: weights sha256 {record['weights_sha256'][:16]}..., loss {record['final_loss']:.4f}")
        return 0
    same = shipped.get("weights_sha256") == record["weights_sha256"]
    print(f"this run: weights sha256 {record['weights_sha256'][:16]}..., final loss {record['final_loss']:.4f}")
    if not shipped:
        print("examples/base/ has no PROVENANCE.json to compare with")
    elif same:
        print("identical to the shipped base (examples/base/)")
    else:
        print(f"differs from the shipped base ({shipped.get('weights_sha256', '?')[:16]}..., final loss "
              f"{shipped.get('final_loss', float('nan')):.4f}): float32 sums on another CPU (or another spec, "
              f"{'same' if shipped.get('spec_hash') == record['spec_hash'] else 'a different'} spec hash) give other bits; "
              "finetune this run's export with model.checkpoint: runs/pretrain/export")
    return 0


if __name__ == "__main__":
    sys.exit(main())
