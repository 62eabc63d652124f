"""Pretraining on a tiny synthetic corpus: card contents, resuming, settings checks, the CLI."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch
from safetensors.torch import load_file

from metagen.hub import HubCardError, read_card
from metagen.hub.__main__ import main
from metagen.hub.card import WEIGHTS_FILE, sha256_file
from metagen.hub.corpora import synthetic_corpus
from metagen.hub.pretrain import PretrainSettings, augment, lr_at, pretrain

ARCH = "edgenext_xx_small"


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def corpus():
    return synthetic_corpus(32, n_train=48, n_eval=16, seed=1)


def settings(**kw) -> PretrainSettings:
    base = {"architecture": ARCH, "corpus": "synth", "resolution": 32, "epochs": 2, "images": 32,
            "batch_size": 16, "warmup_steps": 1, "seed": 3}  # fmt: skip
    return PretrainSettings(**{**base, **kw})


def test_pretrain_writes_weights_and_a_card(tmp_path, corpus):
    lines: list[str] = []
    card = pretrain(settings(), tmp_path, corpus, threads=1, log=lines.append)
    assert card is not None and card.card_id == "edgenext_xx_small.synth32"
    folder = tmp_path / card.card_id
    assert sorted(p.name for p in folder.iterdir()) == ["card.json", "card.md", WEIGHTS_FILE]
    assert not (tmp_path / f"{card.card_id}.partial").exists()
    assert read_card(folder) == card
    assert card.weights_sha256 == sha256_file(folder / WEIGHTS_FILE)
    assert load_file(str(folder / WEIGHTS_FILE))["head.fc.weight"].shape == (4, 168)
    assert card.epochs == 2 and [h["epoch"] for h in card.history] == [1, 2]
    assert card.evaluation == {"split": "eval", "images": 16, "top1": card.history[-1]["top1"]}
    assert card.source["images_per_epoch"] == 32 and card.source["images_available"] == 48
    assert card.recipe["steps"] == 4 and card.cost["threads"] == 1
    assert 0 < card.history[0]["cpu_s"] <= card.cost["cpu_s"]
    assert "timm" in card.packages and "torch" in card.packages
    assert len(lines) == 2 and lines[-1].startswith("edgenext_xx_small.synth32: epoch 2/2")
    with pytest.raises(HubCardError, match="exists already"):
        pretrain(settings(), tmp_path, corpus)


def test_a_resumed_run_ends_with_the_same_weights(tmp_path, corpus):
    whole = pretrain(settings(), tmp_path / "a", corpus, threads=1, log=lambda s: None)
    assert pretrain(settings(), tmp_path / "b", corpus, threads=1, log=lambda s: None, stop_after_epoch=1) is None
    assert (tmp_path / "b" / "edgenext_xx_small.synth32.partial" / "checkpoint.pt").is_file()
    with pytest.raises(HubCardError, match="other settings"):
        pretrain(settings(lr=0.01), tmp_path / "b", corpus, threads=1)
    lines: list[str] = []
    resumed = pretrain(settings(), tmp_path / "b", corpus, threads=1, log=lines.append)
    assert lines[0] == "edgenext_xx_small.synth32: resuming after epoch 1/2" and len(lines) == 2
    assert resumed is not None and whole is not None
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    assert resumed.history[-1]["train_loss"] == pytest.approx(whole.history[-1]["train_loss"], abs=1e-4)
    # Same data order, augmentation, schedule and optimiser state: the weights agree up to float rounding
    # (bit-identical in a fresh process; kernels may round differently after other tests ran in the process).
    a = load_file(str(tmp_path / "a" / whole.card_id / WEIGHTS_FILE))
    b = load_file(str(tmp_path / "b" / resumed.card_id / WEIGHTS_FILE))
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < 1e-4, f"resumed weights differ by {worst}"


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"architecture": "no_such_net"}, "unknown timm architecture"),
        ({"images": 49}, "images=49 must be in 1..48"),
        ({"batch_size": 64}, "batch_size=64"),
        ({"epochs": 0}, "epochs=0"),
        ({"resolution": 64}, "corpus is 32 px"),
        ({"hflip": True, "corpus_hflip_ok": False}, "does not tolerate horizontal flips.*--no-hflip"),
    ],
)
def test_bad_settings_fail_before_training(tmp_path, corpus, kw, match):
    if not kw.pop("corpus_hflip_ok", True):
        corpus = dataclasses.replace(corpus, hflip_ok=False)
    with pytest.raises(HubCardError, match=match):
        pretrain(settings(**kw), tmp_path, corpus)
    assert not any(tmp_path.iterdir())


def test_schedule_and_augmentation():
    s = settings(lr=1.0, warmup_steps=4)
    lrs = [lr_at(i, 20, s) for i in range(20)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0] and lrs[4] == 1.0 and lrs[-1] < 0.01
    assert all(a >= b for a, b in itertools.pairwise(lrs[3:]))
    x = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(1)) + 1.0
    assert torch.equal(augment(x, 0, False, torch.Generator().manual_seed(0)), x)
    out = augment(x, 2, True, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    kinds = set()
    for img, src in zip(out, padded, strict=True):  # each output is a crop of the zero-padded source, maybe mirrored
        crops = {(oy, ox): src[:, oy : oy + 8, ox : ox + 8] for oy in range(5) for ox in range(5)}
        found = [(*k, f) for k, c in crops.items() for f in (False, True) if torch.equal(img, c.flip(2) if f else c)]
        assert found, "not a crop of the padded image (or mirrored vertically)"
        kinds.add(found[0])
    assert len(kinds) > 4 and {f for _, _, f in kinds} == {False, True}


def test_cli_pretrains_the_synthetic_corpus_and_lists_it(tmp_path, capsys):
    argv = ["pretrain", "--model", ARCH, "--out", str(tmp_path), "--corpus", "synth", "--resolution", "32"]
    argv += ["--epochs", "1", "--images", "32", "--batch-size", "16", "--warmup-steps", "1", "--threads", "1",
             "--progress-steps", "1"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert (
        "epoch 1 step 1/2 loss" in out
        and "epoch 1/1" in out
        and "wrote " in out
        and "card:edgenext_xx_small.synth32@sha256:" in out
    )
    assert main(argv) == 2
    assert "exists already" in capsys.readouterr().err
    assert main(["list", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("edgenext_xx_small.synth32\tcard:")
    assert "horizontal flip" in read_card(tmp_path / "edgenext_xx_small.synth32").recipe["augmentation"]
    assert main([*argv[:4], str(tmp_path / "noflip"), *argv[5:], "--no-hflip"]) == 0
    assert "horizontal flip" not in read_card(tmp_path / "noflip" / "edgenext_xx_small.synth32").recipe["augmentation"]
