"""Rendering a plan for people: rich tables of model, compute, memory, mixture, evals, diff."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from flanctl.plan.document import Plan


def human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def human_count(n: float | None) -> str:
    if n is None:
        return "-"
    for div, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return str(int(n))


def _sci(x: float | None) -> str:
    return "-" if x is None else f"{x:.2e}"


def _kv_table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left", box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for k, v in rows:
        table.add_row(k, v)
    return table


def render_plan(plan: Plan, console: Console) -> None:
    """Print the plan's sections as tables."""
    plan = plan.document()
    m, c, mem, d = plan["model"], plan.get("compute") or {}, plan["memory"], plan["distribution"]
    arch = m.get("architecture") or {}
    arch_text = ", ".join(f"{k}={v}" for k, v in arch.items()) if arch else "-"
    console.print(_kv_table("Model", [
        ("family / size", f"{m['family']} / {m['size'] or '-'}"),
        ("kind", "encoder-decoder" if m["encoder_decoder"] else "decoder-only"),
        ("parameters", _params_text(m)),
        ("architecture", arch_text),
        ("tokenizer", m["tokenizer"]["kind"]),
        ("precision", m["precision"]),
    ]))
    if c:
        t = c["time"]
        rows = [
            ("tokens / step", f"{c['tokens_per_step']:,}"),
            ("finetune tokens", human_count(c["finetune_tokens"])),
            ("finetune FLOPs", f"{_sci(c['finetune_flops'])}  [{c['flops_method']}]"),
            ("pretrain FLOPs", _sci(c["pretrain_flops"])),
            ("finetune fraction", f"{100 * c['finetune_fraction']:.2f}%" if c["finetune_fraction"] else "-"),
            ("time estimate", f"{t['hours']:.1f} h on {t['devices']} x {d['device']} at {100 * t['utilization']:.0f}% utilisation"),
        ]
        if "paper_table2" in c:
            p = c["paper_table2"]
            rows.append(("paper Table 2", f"pretrain {_sci(p['pretrain_flops'])}, finetune {_sci(p['finetune_flops'])}, {p['finetune_percent']}%"))
        console.print(_kv_table("Compute", rows))
    mem_rows = [(k, human_bytes(v)) for k, v in (mem.get("terms") or {}).items()]
    if mem.get("per_device_bytes") is not None:
        verdict = "[green]fits[/green]" if mem["fits"] else "[red]does not fit[/red]"
        mem_rows += [
            ("per device", f"{human_bytes(mem['per_device_bytes'])} of {human_bytes(mem['device_bytes'])}: {verdict} (largest: {mem['largest']})"),
            ("activations", f"{human_bytes(mem['activations_no_remat'])} without remat, {human_bytes(mem['activations_remat'])} with"),
        ]
    mem_rows.append(("mesh", f"data={d['mesh']['data']} x model={d['mesh']['model']} ({d['backend']}, {d['processes']['count']} process(es))"))
    console.print(_kv_table("Memory per device", mem_rows))

    mix = plan["mixture"]
    table = Table(title="Mixture" + (f" (proportions {mix['proportions_named']})" if mix["proportions_named"] else ""), title_justify="left")
    for col in ("collection", "share", "cap", "tasks", "datasets", "categories", "templates"):
        table.add_column(col)
    raw_text = (plan.get("spec", {}).get("train") or {}).get("objective", "instruction") != "instruction"
    for coll in mix["collections"]:
        t = coll["templates"]
        templates = "raw text" if raw_text else (
            f"zero-shot {t['zero_shot_opts'] + t['zero_shot_noopts']:.2f} / few-shot {t['few_shot_opts'] + t['few_shot_noopts']:.2f}"
            f" / cot {t['cot']:.2f}"
        )
        table.add_row(coll["name"], f"{100 * coll['share']:.1f}%", _opt(coll["cap"]), _opt(coll["tasks"]), _opt(coll["datasets"]), _opt(coll["categories"]), templates)
    e = mix["expected"]
    table.add_row("[bold]total[/bold]", "100%", "", _opt(e["tasks"]), _opt(e["datasets"]), _opt(e["categories"]), "")
    console.print(table)
    realized = mix.get("realized")
    if realized and realized.get("tasks"):
        rt = Table(title="Mixture realized from the local data", title_justify="left")
        for col in ("task", "collection", "examples", "rate", "epochs"):
            rt.add_column(col, justify="left" if col in ("task", "collection") else "right")
        for t in realized["tasks"]:
            rt.add_row(t["name"], t["collection"], f"{t['count']:,}", f"{100 * t['rate']:.2f}%", f"{t['epochs_unpacked']:.2f}")
        console.print(rt)

    ev = plan["eval"]
    if ev["suites"]:
        table = Table(title="Eval", title_justify="left")
        for col in ("suite", "shots", "cot", "examples", "chance", "paper (Flan-PaLM 540B)"):
            table.add_column(col)
        for s in ev["suites"]:
            if s.get("members"):  # a group: the sum of its member suites
                table.add_row(s["name"], "-", "-", f"{s['examples']:,}", "-", f"= {' + '.join(s['members'])}")
                continue
            table.add_row(s["name"], str(s["shots"]), "yes" if s["cot"] else "no", f"{s['examples']:,}", f"{s['chance']:g}", _opt(s["paper_scores"].get("flan-palm-540b")))
        console.print(table)
        if ev.get("every"):
            console.print(f"held-out evals every {ev['every']} steps during training (evals/step_<n>/, metrics.jsonl)")

    diff = plan["run"]["diff"]
    console.print(f"[bold]Run[/bold] {plan['run']['name']} ({plan['run']['dir']}): {diff['summary']}")
    for ch in diff["changes"]:
        mark = "[red]![/red]" if ch["invalidates"] else "~"
        console.print(f"  {mark} {ch['path']}: {ch['old']!r} -> {ch['new']!r}")
    for note in plan.get("notes", []):
        console.print(f"[yellow]note:[/yellow] {note}")


def _opt(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _params_text(m: dict[str, Any]) -> str:
    if not m["params"]:
        return "-"
    text = f"{m['params']:,} ({human_count(m['params'])})"
    if m.get("params_without_norms") and m["params_without_norms"] != m["params"]:
        text += f"; {human_count(m['params_without_norms'])} without layer-norm scales (PaLM Table 1's convention)"
    return text
