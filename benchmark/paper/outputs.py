"""Every figure and table of a paper output folder, and its ``index.md``, from ``paper.json``, the RESULTS
under ``runs/`` and the store (Fig. 1, Fig. 2 and the composition table read the store, the rest the results).

:func:`write_outputs` is a pure function of those files: the same inputs give the same files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.figures import method_styles, save
from benchmark.metrics import _ordered_versions, proposal_notes
from benchmark.paper.common import experiment_labels, load_paper_results, read_manifest, subset
from benchmark.paper.composition import composition_markdown, composition_table
from benchmark.paper.experiments import MODEL_FIRST, TITLES
from benchmark.paper.hub_size import hub_size_table, plot_hub_size
from benchmark.paper.model_ranks import model_ranks, plot_model_ranks
from benchmark.paper.no_hpo import no_hpo_markdown, no_hpo_table
from benchmark.paper.over_time import over_time_figures
from benchmark.paper.pareto import hub_models, pareto_table, plot_pareto, without_imagenet_top1
from benchmark.task import load_tasks
from metagen.store import StoreReader

SELECTION_NOTE = (
    "The paper picks the model by its LogME score on the target dataset's images. A replay has no images or "
    "features, so `select_model_first` uses a documented proxy (docs/quicktune-deviations.md): the model with "
    "the best mean final accuracy over the meta-training datasets of the task's fold, from the store; then "
    "Quick-Tune tunes only that model's pipelines."
)
"""How Fig. 6's model-first baseline chooses its model (said in the index)."""


@dataclass
class Section:
    """One entry of the index: a title, its files (figures shown, tables linked), a caption and skip notes."""

    title: str
    files: list[Path] = field(default_factory=list)
    caption: str = ""
    notes: list[str] = field(default_factory=list)


def _methods(manifest: dict[str, Any], key: str) -> list[str]:
    """One line per version: the labels of experiment ``key`` and what each runs when it is a variant."""
    out = []
    for version, v in manifest["versions"].items():
        exp = v["experiments"].get(key)
        if exp is None:
            continue
        names = []
        for label in exp["labels"]:
            e = exp["entries"][label]
            opts = ", ".join(f"{k}={val}" for k, val in e["options"].items())
            names.append(f"`{label}`" + ("" if label == e["method"] else f" ({e['method']}: {opts})"))
        out.append(f"Methods ({version}): " + (", ".join(names) if names else "none can run"))
    return out


def _empty(manifest: dict[str, Any], key: str) -> str:
    """Why a section has no figure: the experiment was not planned, or none of its cells has finished."""
    planned = any(key in v["experiments"] for v in manifest["versions"].values())
    return "no finished cell yet" if planned else "not planned (not in experiments=)"


def _skipped(manifest: dict[str, Any], key: str) -> list[str]:
    out = []
    for version, v in manifest["versions"].items():
        for label, reason in v["experiments"].get(key, {}).get("skipped", {}).items():
            out.append(f"{version}: **{label}** skipped: {reason}")
    return out


def write_outputs(out: str | Path, formats: tuple[str, ...] | list[str] = ("png",), dpi: int = 110) -> list[Path]:
    """Writes every figure and table of the paper output folder ``out`` and ``out/index.md``; returns the paths."""
    out = Path(out)
    manifest = read_manifest(out)
    results = load_paper_results(out, manifest)
    versions = _ordered_versions(list(manifest["versions"]))
    store = manifest["store"]
    sections: list[Section] = []
    styles = method_styles(results.methods()) if results is not None else {}

    table = composition_table(store, versions)
    table.write_csv(out / "composition.csv")
    (out / "composition.md").write_text(composition_markdown(table))
    sections.append(Section("Composition of the store", [out / "composition.md", out / "composition.csv"],
                            "Curves are runs with their status; epochs are recorded epochs. In parentheses: the "
                            "sizes of the paper's meta-dataset."))  # fmt: skip

    sources: dict[str, set[str]] = {}
    for v in versions:
        pairs = StoreReader(store).scan_runs(v).select("model", "pretrained_source").unique().collect()
        for model, source in pairs.iter_rows():  # a null source (imported, synthetic) says nothing: not counted
            sources.setdefault(model, set()).update([source] if source is not None else [])
    pareto = pareto_table(without_imagenet_top1(hub_models(sorted(sources), manifest.get("search_space")), sources))
    pareto.write_csv(out / "fig2_pareto.csv")
    section = Section(
        "Fig. 2: the model hub (parameters vs. ImageNet top-1)",
        save(plot_pareto(pareto), out / "fig2_pareto", formats, dpi),
    )
    section.files.append(out / "fig2_pareto.csv")
    where = (
        f"search space {manifest['search_space']}" if manifest.get("search_space") else "conf/search_spaces, v1 first"
    )
    section.caption = f"Sizes and top-1 from the search spaces' metadata ({where}); the step line is the Pareto front."
    section.notes = [f"**{r['model']}**: {r['note']}" for r in pareto.iter_rows(named=True) if r["note"]]
    sections.append(section)

    section = Section("Fig. 1: rank of each model's best pipeline per dataset")
    section.caption = (
        "From the store: a model's score on a dataset is the best accuracy of any recorded epoch of its pipelines "
        "there (the store's pipelines stand in for the paper's per-model HPO); ranks per dataset, 1 = best."
    )
    for v in versions:
        mr = model_ranks(load_tasks(store, v, manifest["versions"][v]["datasets"]))
        section.files += save(plot_model_ranks(mr), out / f"fig1_model_ranks_{v}", formats, dpi)
    sections.append(section)

    for key, stem in (("fig3", "fig3_baselines"), ("fig4", "fig4_ablations"), ("fig6", "fig6_model_first")):
        section = Section(TITLES[key], notes=_methods(manifest, key) + _skipped(manifest, key))
        labels = experiment_labels(manifest, key)
        figs = over_time_figures(results, labels, TITLES[key], styles) if results is not None and labels else None
        if figs is None:
            section.notes.append(_empty(manifest, key))
        else:
            sub = subset(results, labels) if results is not None else None
            section.notes += proposal_notes(sub) if sub is not None else []
            section.files += save(figs[0], out / f"{stem}_regret", formats, dpi)
            if figs[1] is not None:
                section.files += save(figs[1], out / f"{stem}_rank", formats, dpi)
        section.caption = (
            "Mean over (dataset, seed) runs with a 95 % Student-t band; ranks among this figure's methods."
        )
        if key == "fig6":
            section.caption += (
                f" `quicktune` searches models and hyperparameters jointly; `{MODEL_FIRST}`: {SELECTION_NOTE}"
            )
        sections.append(section)

    section = Section(TITLES["fig5"], notes=_methods(manifest, "fig5") + _skipped(manifest, "fig5"))
    sizes = {}
    for v, hub_labels in experiment_labels(manifest, "fig5").items():
        entries = manifest["versions"][v]["experiments"]["fig5"]["entries"]
        n_models = manifest["versions"][v]["n_models"]
        sizes[v] = {m: int(entries[m]["options"].get("hub_size", n_models)) for m in hub_labels}
    hub = hub_size_table(results, sizes) if results is not None and sizes else None
    if hub is None:
        section.notes.append(_empty(manifest, "fig5"))
    else:
        hub.write_csv(out / "fig5_hub_size.csv")
        section.files += [*save(plot_hub_size(hub), out / "fig5_hub_size", formats, dpi), out / "fig5_hub_size.csv"]
    section.caption = (
        "Random sub-hubs drawn with the optimizer's seed; the paper's sizes 5, 10, 15, 20 of 24 models, scaled by "
        "the store's number of models where it has fewer; the largest size is the whole hub (plain `quicktune`)."
    )
    sections.append(section)

    section = Section(TITLES["no_hpo"], notes=_methods(manifest, "no_hpo") + _skipped(manifest, "no_hpo"))
    nohpo = no_hpo_table(results, experiment_labels(manifest, "no_hpo")) if results is not None else None
    if nohpo is None:
        section.notes.append(_empty(manifest, "no_hpo"))
    else:
        nohpo.write_csv(out / "table_no_hpo.csv")
        (out / "table_no_hpo.md").write_text(
            "Regret and rank at the end of the budget: mean ± std [95 % Student-t half-width] over datasets "
            "(seeds averaged per dataset); ranks among this table's methods; best mean in bold.\n\n"
            + no_hpo_markdown(nohpo)
        )
        section.files += [out / "table_no_hpo.md", out / "table_no_hpo.csv"]
    section.caption = (
        "`default-X`: model X with default hyperparameters (the candidate of X closest to timm's train.py "
        "defaults, benchmark/methods/baselines.py) trained to the last epoch; no HPO."
    )
    sections.append(section)

    index = out / "index.md"
    index.write_text(index_markdown(manifest, sections, results is not None))
    return [p for s in sections for p in s.files] + [index]


def index_markdown(manifest: dict[str, Any], sections: list[Section], any_results: bool) -> str:
    """The index page: settings, then every section with its figures and tables."""
    lines = ["# Quick-Tune paper experiments", ""]
    if manifest["synthetic"]:
        lines += ["**SYNTHETIC store: these numbers test the machinery; they are not findings about finetuning.**", ""]
    lines += [
        f"* Store: `{manifest['store_name']}` ({manifest['store']})",
        f"* Seeds: {manifest['seeds']} (the paper ran one seed per method and dataset)",
        "* Budgets (simulated seconds per replay): "
        + ", ".join(f"{v} {d['budget_s']:g} s" for v, d in manifest["versions"].items())
        + ("" if manifest["budget"] is None else " (set with budget=; the paper's are 3600 / 14400 / 57600 s)"),
        f"* Overhead charged to the simulated clock: `{manifest['overhead']}`"
        + (
            " (the optimizer's own wall time counts, as in the paper)"
            if manifest["overhead"] == "measured"
            else " (the paper charges the optimizer's own overhead: overhead=measured)"
        ),
        "* Datasets per version: "
        + ", ".join(f"{v} {len(d['datasets'])}" for v, d in manifest["versions"].items())
        + (
            ""
            if manifest["max_datasets"] is None
            else f" (the first {manifest['max_datasets']} of each, max_datasets=)"
        ),
        f"* Executor: {manifest['cluster']} (jobs={manifest['jobs']})",
        "* Method options: "
        + (
            "; ".join(f"`{m}`: {o}" for m, o in manifest.get("method_options", {}).items())
            + " (overrides of the defaults; every cell's full options: runs/<version>/run.json)"
            if manifest.get("method_options")
            else "each method's defaults (every cell's full options: runs/<version>/run.json)"
        ),
    ]
    for v, d in manifest["versions"].items():
        lines.append(f"* Cells planned, {v}: {d['planned_cells']}")
    for r in manifest.get("history", []):
        lines.append(f"* Run finished {r['finished_at']}, {r['version']}: {r['replayed']} cells replayed, "
                     f"{r['already_done']} already done, {r['failed']} failed, {r['wall_s']:g} s wall")  # fmt: skip
    if not any_results:
        lines.append("* No cell has finished yet.")
    lines.append("")
    for s in sections:
        lines += [f"## {s.title}", ""]
        if s.caption:
            lines += [s.caption, ""]
        for p in s.files:
            lines.append(f"![{p.stem}]({p.name})" if p.suffix == ".png" else f"* [{p.name}]({p.name})")
        for p in s.files:
            if p.suffix == ".md":
                lines += ["", p.read_text().strip()]
        if s.files:
            lines.append("")
        lines += [f"* {n}" for n in s.notes]
        if s.notes:
            lines.append("")
    return "\n".join(lines)
