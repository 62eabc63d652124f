"""finetune() end to end on CPU: store write, statuses, resume bit-identity, strategies in the loop."""

from __future__ import annotations

import itertools
import math
import shutil

import polars as pl
import pytest
import torch

from metagen.datasets import load_dataset
from metagen.finetune import FinetuneConfigError, Interrupted, finetune, loop, run_id_of, runner
from metagen.finetune.errors import DatasetContentError
from metagen.finetune.provenance import cpu_model
from metagen.store import StoreMetadata, StoreReader, create_store
from metagen.store.schema import CURVE_VALUE_COLUMNS, RUN_COLUMNS
from tests.finetune.conftest import BN_MODEL, make_cfg

VALUES = [c for c in CURVE_VALUE_COLUMNS if c not in ("train_time", "eval_time", "peak_memory")]


def new_store(tmp_path, name="store"):
    root = tmp_path / name
    create_store(root, StoreMetadata(name=name, description="test"))
    return root


def curve(store, run_id) -> pl.DataFrame:
    return StoreReader(store).scan_curves().filter(pl.col("run_id") == run_id).sort("epoch").collect()


def run_of(store, run_id) -> dict:
    return StoreReader(store).scan_runs().filter(pl.col("run_id") == run_id).collect().row(0, named=True)


def test_run_is_written_with_curve_and_provenance_then_idempotent(tiny_dataset, store, tmp_path):
    cfg = make_cfg(tiny_dataset, store, tmp_path)
    epochs: list[dict] = []
    result = finetune(cfg, on_epoch=epochs.append)
    assert result.status == "ok" and result.n_epochs == 2 and result.wrote_store and result.resumed_from_epoch is None
    assert not (tmp_path / "ckpt" / result.run_id).exists()  # by default the checkpoint goes once the run is stored
    assert [e["epoch"] for e in epochs] == [1, 2] and result.final_top1 == epochs[-1]["eval_top1"]
    assert result.run_id == run_id_of(cfg)
    c = curve(store, result.run_id)
    assert c["epoch"].to_list() == [1, 2]
    for col in CURVE_VALUE_COLUMNS:
        assert c[col].is_not_null().all(), col
    assert c["eval_top1"].is_between(0, 1).all() and (c["eval_top5"] >= c["eval_top1"]).all()
    assert (c["peak_memory"] > 0).all() and (c["train_time"] > 0).all()
    run = run_of(store, result.run_id)
    assert set(run) == {col.name for col in RUN_COLUMNS}
    assert run["status"] == "ok" and run["max_epochs"] == 2 and run["final_batch_size"] == 8
    assert (run["train_size"], run["num_classes"], run["resolution"], run["channels"]) == (24, 4, 32, 3)
    assert run["pretrained_source"] == "random-init" and "timm" in run["package_versions"]
    assert run["source"] == "metagen"
    threads = f"({cfg.num_threads} threads," if cfg.num_threads else "threads,"  # the run's threads, not the default's
    assert run["hardware"].startswith("cpu x") and threads in run["hardware"] and cpu_model() in run["hardware"]
    assert '"pretrained": "none"' in run["extra_hps"]
    # what the runner did to the images: the shapes kind tolerates flips but no crop under 35 %
    assert (run["crop_scale_min"], run["hflip"], run["color_jitter"]) == (0.35, 0.5, 0.4)
    assert "scale=(0.35, 1.0)" in run["train_transforms"] and "CenterCrop" in run["eval_transforms"]
    assert run["dataset_fingerprint"] == load_dataset(tiny_dataset).fingerprint() and run["time_clock"] == "wall"
    again = finetune(cfg)
    assert not again.wrote_store and again.status == "ok" and again.n_epochs == 2 and again.elapsed_s == 0.0
    longer = finetune(make_cfg(tiny_dataset, store, tmp_path, epochs=3))
    assert not longer.wrote_store and "budget of 2 epochs" in str(longer.message)


def test_resume_after_interrupt_and_budget_extension_are_bit_identical(tiny_dataset, tmp_path):
    hp = {"sched": "plateau", "patience_epochs": 2, "drop": 0.2, "mixup": 0.4, "cutmix": 1.0,
          "mixup_prob": 0.5, "data_augmentation": "trivial_augment", "opt": "momentum", "momentum": 0.9}  # fmt: skip
    hp.pop("opt_betas", None)

    def cfg(store, ck, **kw):
        kw.setdefault("epochs", 3)
        c = make_cfg(tiny_dataset, store, tmp_path, checkpoint_dir=str(tmp_path / ck), hp=hp, **kw)
        c.hp.pop("opt_betas", None)
        return c

    full = finetune(cfg(new_store(tmp_path, "a"), "ck_a"))
    assert full.status == "ok"

    calls = itertools.count()
    store_b = new_store(tmp_path, "b")
    with pytest.raises(Interrupted):  # polled between batches: stops inside epoch 2 (3 batches per epoch)
        finetune(cfg(store_b, "ck_b"), should_stop=lambda: next(calls) >= 5)
    assert StoreReader(store_b).scan_runs().collect().height == 0  # nothing stored
    state = torch.load(tmp_path / "ck_b" / full.run_id / "last.pt", weights_only=False)
    assert state["epoch"] == 1
    resumed = finetune(cfg(store_b, "ck_b"))
    assert resumed.resumed_from_epoch == 1 and resumed.status == "ok"

    store_c = new_store(tmp_path, "c")
    short = finetune(cfg(store_c, "ck_c", epochs=2, keep_checkpoint=True))  # kept to extend the budget
    assert short.n_epochs == 2
    extended = finetune(cfg(new_store(tmp_path, "d"), "ck_c", epochs=3))  # same checkpoints, larger budget
    assert extended.resumed_from_epoch == 2 and extended.n_epochs == 3

    ref = curve(tmp_path / "a", full.run_id).select(VALUES)
    assert ref.equals(curve(store_b, full.run_id).select(VALUES))
    assert ref.equals(curve(tmp_path / "d", full.run_id).select(VALUES))
    assert ref.head(2).equals(curve(store_c, full.run_id).select(VALUES))


def test_diverged_run_keeps_the_curve_and_records_nan(tiny_dataset, store, tmp_path, monkeypatch):
    build = runner.build_optimizer

    def huge_lr(model, hps):
        opt = build(model, hps)
        for g in opt.param_groups:
            g["lr"] *= 1e12
        return opt

    monkeypatch.setattr(runner, "build_optimizer", huge_lr)
    cfg = make_cfg(tiny_dataset, store, tmp_path, epochs=4, hp={"opt": "sgd", "sched": None, "lr": 0.01})
    cfg.hp.pop("opt_betas")
    result = finetune(cfg)
    assert result.status == "diverged"
    c = curve(store, result.run_id)
    last = c.row(-1, named=True)
    assert math.isnan(last["train_loss"]) and math.isnan(last["eval_top1"])
    assert c.height == result.n_epochs >= 1
    assert "non-finite" in run_of(store, result.run_id)["status_message"]


def test_timeout_keeps_completed_epochs(tiny_dataset, store, tmp_path, monkeypatch):
    class Clock:  # every reading advances one second
        t = 0.0

        def monotonic(self):
            self.t += 1.0
            return self.t

    monkeypatch.setattr(runner, "time", Clock())
    result = finetune(make_cfg(tiny_dataset, store, tmp_path, epochs=5, cap_s=9.0))
    assert result.status == "timeout" and 1 <= result.n_epochs < 5
    run = run_of(store, result.run_id)
    assert run["time_cap_s"] == 9.0 and "cap" in run["status_message"]
    assert curve(store, result.run_id).height == result.n_epochs


def test_finish_as_timeout_writes_the_checkpointed_curve_with_the_real_cap(tiny_dataset, tmp_path):
    def cfg(store, **kw):
        return make_cfg(tiny_dataset, store, tmp_path, epochs=3, cap_s=600.0, checkpoint_dir=str(tmp_path / "ck"), **kw)

    calls = itertools.count()
    store = new_store(tmp_path, "a")
    with pytest.raises(Interrupted):  # 3 batches per epoch: stops in epoch 2, epoch 1 is checkpointed
        finetune(cfg(store), should_stop=lambda: next(calls) >= 5)
    result = finetune(cfg(store), finish_as_timeout="preempted too often")
    assert (result.status, result.n_epochs, result.resumed_from_epoch, result.wrote_store) == ("timeout", 1, 1, True)
    run = run_of(store, result.run_id)
    assert (run["status"], run["time_cap_s"], run["status_message"]) == ("timeout", 600.0, "preempted too often")
    assert curve(store, result.run_id)["epoch"].to_list() == [1]

    fresh = new_store(tmp_path, "b")  # no checkpoint: an empty timeout run, nothing trained
    empty = finetune(make_cfg(tiny_dataset, fresh, tmp_path, seed=1), finish_as_timeout="never started")
    assert (empty.status, empty.n_epochs, empty.resumed_from_epoch) == ("timeout", 0, None)
    assert run_of(fresh, empty.run_id)["status_message"] == "never started"


def test_out_of_memory_halves_the_batch_then_gives_up(tiny_dataset, tmp_path, monkeypatch):
    def fake_oom(batch_size):
        if batch_size > 4:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(loop, "BATCH_HOOK", fake_oom)
    store = new_store(tmp_path, "s1")
    ok = finetune(make_cfg(tiny_dataset, store, tmp_path, epochs=1, hp={"batch_size": 16}, min_batch_size=2))
    assert ok.status == "ok" and run_of(store, ok.run_id)["final_batch_size"] == 4
    store2 = new_store(tmp_path, "s2")
    oom = finetune(make_cfg(tiny_dataset, store2, tmp_path, epochs=1, hp={"batch_size": 16}, min_batch_size=8,
                            checkpoint_dir=str(tmp_path / "other")))  # fmt: skip
    run = run_of(store2, oom.run_id)
    assert oom.status == "oom" and run["final_batch_size"] == 8 and run["n_epochs"] == 0


def test_errors_in_training_are_recorded_not_raised(tiny_dataset, store, tmp_path, monkeypatch):
    def boom(batch_size):
        raise RuntimeError("boom in the loop")

    monkeypatch.setattr(loop, "BATCH_HOOK", boom)
    result = finetune(make_cfg(tiny_dataset, store, tmp_path, keep_checkpoint=False))
    assert result.status == "error" and "boom in the loop" in str(result.message)
    assert "boom in the loop" in run_of(store, result.run_id)["status_message"]
    assert not (tmp_path / "ckpt" / result.run_id).exists()


def test_config_errors_raise_before_training(tiny_dataset, store, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        finetune(make_cfg(tmp_path / "missing", store, tmp_path))
    with pytest.raises(FileNotFoundError, match="not a learning-curve store"):
        finetune(make_cfg(tiny_dataset, tmp_path / "nostore", tmp_path))
    with pytest.raises(FinetuneConfigError, match="source head"):
        finetune(make_cfg(tiny_dataset, store, tmp_path, hp={"cotuning_reg": 1.0}))
    with pytest.raises(ValueError, match="allowed"):
        finetune(make_cfg(tiny_dataset, store, tmp_path, model="resnet18"))
    assert StoreReader(store).scan_runs().collect().height == 0


def test_linear_probing_trains_the_head_then_unfreezes(tiny_dataset, store, tmp_path):
    hp = {"linear_probing": True, "pct_to_freeze": 0.0}
    cfg = make_cfg(tiny_dataset, store, tmp_path, model=BN_MODEL, epochs=1, schedule_epochs=2, hp=hp,
                   keep_checkpoint=True)  # fmt: skip
    first = finetune(cfg)
    state1 = torch.load(tmp_path / "ckpt" / first.run_id / "last.pt", weights_only=False)["model"]
    finetune(make_cfg(tiny_dataset, new_store(tmp_path, "s2"), tmp_path, model=BN_MODEL, epochs=2,
                      schedule_epochs=2, hp=hp, keep_checkpoint=True))  # fmt: skip
    state2 = torch.load(tmp_path / "ckpt" / first.run_id / "last.pt", weights_only=False)["model"]
    torch.manual_seed(0)
    from metagen.finetune.models import WeightsSource, build_model

    init = build_model("mobilevit_xxs.cvnets_in1k", 4, weights=WeightsSource("random"), img_size=32).model.state_dict()
    weights = [k for k in init if k.endswith("weight") and "norm" not in k and init[k].ndim > 1]
    head = [k for k in weights if k.startswith("head.")]
    body = [k for k in weights if not k.startswith("head.")]
    assert all(not torch.equal(state1[k], init[k]) for k in head)  # epoch 1: the head trains
    assert all(torch.equal(state1[k], init[k]) for k in body)  # ... and nothing else
    assert sum(not torch.equal(state2[k], state1[k]) for k in body) == len(body)  # epoch 2: all layers train


def test_a_dataset_of_the_same_name_with_other_content_is_refused_before_training(tiny_dataset, store, tmp_path):
    finetune(make_cfg(tiny_dataset, store, tmp_path, epochs=1))
    copy = tmp_path / "copy"
    shutil.copytree(tiny_dataset, copy)
    rows = (copy / "labels.csv").read_text().splitlines()
    first = rows[1].split(",")
    other = next(r.split(",")[1] for r in rows[2:] if r.split(",")[1] != first[1])
    rows[1] = ",".join([first[0], other, *first[2:]])  # same name in info.json, one label changed
    (copy / "labels.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DatasetContentError, match="other content"):
        finetune(make_cfg(copy, store, tmp_path, epochs=1))
    shutil.copytree(tiny_dataset, tmp_path / "same")  # an identical copy is the same dataset
    assert finetune(make_cfg(tmp_path / "same", store, tmp_path, epochs=1)).wrote_store is False


def test_an_exploding_training_loss_is_stored_as_diverged(tiny_dataset, store, tmp_path, monkeypatch):
    def exploding(parts, loader, check):
        return {"train_loss": 49000.0, "train_ce": 48000.0, "head_grad_norm": 1.0, "backbone_grad_norm": 1.0,
                "diverged": 0}  # fmt: skip

    monkeypatch.setattr(runner, "train_epoch", exploding)
    result = finetune(make_cfg(tiny_dataset, store, tmp_path, epochs=3))
    assert result.status == "diverged" and result.n_epochs == 1
    assert "exceeds 100 x ln(4)" in str(result.message)
    c = curve(store, result.run_id)
    assert c["train_loss"].to_list() == [49000.0] and c["eval_top1"].is_not_nan().all()


def test_process_clock_times_epochs_by_cpu_seconds_and_is_recorded(tiny_dataset, store, tmp_path):
    result = finetune(make_cfg(tiny_dataset, store, tmp_path, epochs=1, clock="process"))
    assert run_of(store, result.run_id)["time_clock"] == "process"
    assert curve(store, result.run_id)["train_time"][0] > 0
    with pytest.raises(FinetuneConfigError, match="clock=process measures"):
        finetune(make_cfg(tiny_dataset, store, tmp_path, clock="process", num_workers=1))
    with pytest.raises(FinetuneConfigError, match="clock='sundial'"):
        finetune(make_cfg(tiny_dataset, store, tmp_path, clock="sundial"))


@pytest.mark.parametrize("blocked", ["store", "checkpoints"])
def test_unwritable_store_or_checkpoints_fail_before_training(tiny_dataset, store, tmp_path, monkeypatch, blocked):
    """A read-only store (or checkpoint folder) is an error before any epoch is trained, not after the last."""
    from metagen.finetune import OutputNotWritableError
    from tests.factories import read_only

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(runner, "_train_halving_on_oom", no_training)
    (tmp_path / "ckpt").mkdir()
    blocked_dir = store if blocked == "store" else tmp_path / "ckpt"
    with read_only(blocked_dir), pytest.raises(OutputNotWritableError, match="not writable") as e:
        finetune(make_cfg(tiny_dataset, store, tmp_path))
    assert ("store" if blocked == "store" else "checkpoint_dir") in str(e.value)


def test_hardware_names_the_runs_threads_and_the_cpu_model():
    import torch

    from metagen.finetune.provenance import hardware

    cpu = torch.device("cpu")
    assert "(3 threads, " in hardware(cpu, 3) and hardware(cpu, 3).endswith(f", {cpu_model()})")
    assert f"({torch.get_num_threads()} threads, " in hardware(cpu)  # no run setting: the current one
