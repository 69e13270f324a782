"""Dataset format, config, history pool, LR schedule, flips, and short CycleGAN training runs."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from app.errors import CheckpointError, ConfigError, InputError
from models.checkpoint import load_inference
from models.cyclegan import (
    CycleGANTrainer,
    GanConfig,
    SemanticCycleGAN,
    hflip,
    load_gan_config,
    lr_factor,
    parse_gan_config,
)
from models.dataset import (
    DEPTH_UNIT_M,
    decode_depth_png,
    encode_depth_png,
    load_domain,
    read_index,
    read_sample,
    write_sample,
    write_synthetic_dataset,
)
from models.image_pool import ImagePool
from models.train_gan import train_gan

torch.set_num_threads(1)
TINY_CONFIG = {"name": "tiny", "model": {"ngf": 4, "ndf": 4},
               "train": {"epochs": 3, "threads": 1, "pool_size": 4, "lr_decay_start": 1.0}}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 sim + 8 real 128×128 images: a flat table, a coloured box, two gripper fingers."""
    root = tmp_path_factory.mktemp("gan_data")
    write_synthetic_dataset(root, n=8, size=128, seed=0)
    return root


@pytest.fixture()
def tiny_config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_CONFIG), encoding="utf-8")
    return path


# ---- dataset format ----------------------------------------------------------------------------


def test_depth_png_units() -> None:
    # 0.45 m = 3600 units of 0.125 mm; 0 stays 0; beyond 8.19 m, negative or NaN → 0 (missing).
    d = np.array([[0.45, 0.0, 9.0, -0.1, np.nan, 0.2000624]], np.float32)
    units = encode_depth_png(d)
    assert units.dtype == np.uint16 and units.tolist() == [[3600, 0, 0, 0, 0, 1600]]
    np.testing.assert_allclose(decode_depth_png(units), [[0.45, 0, 0, 0, 0, 0.2]], atol=1e-7)


def test_dataset_layout_and_round_trip(dataset: Path) -> None:
    index = read_index(dataset)
    assert index["format"] == "simgrasp-gan-dataset" and index["depth_unit_m"] == DEPTH_UNIT_M
    assert (index["height"], index["width"]) == (128, 128)
    assert [s["id"] for s in index["domains"]["sim"]] == [f"{i:05d}" for i in range(8)]
    assert (dataset / "sim" / "00003_mask.png").is_file() and not (dataset / "real" / "00003_mask.png").exists()
    sim = load_domain(dataset, "sim")
    real = load_domain(dataset, "real", limit=3)
    assert sim.rgb.shape == (8, 128, 128, 3) and sim.depth.dtype == np.float32
    assert sim.mask is not None and set(np.unique(sim.mask)) == {0, 1, 2}
    assert len(real) == 3 and real.mask is None
    assert np.any(real.depth == 0.0) and not np.any(sim.depth == 0.0)  # real has holes, sim is exact


def test_write_read_sample_exact(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (4, 5, 3)).astype(np.uint8)
    depth = np.round(np.linspace(0.2, 1.5, 20).reshape(4, 5) / DEPTH_UNIT_M) * DEPTH_UNIT_M
    mask = np.array([[0, 1, 2, 1, 0]] * 4, np.uint8)
    write_sample(tmp_path, "sim", "00000", rgb, depth.astype(np.float32), mask)
    rgb2, depth2, mask2 = read_sample(tmp_path, "sim", "00000")
    np.testing.assert_array_equal(rgb2, rgb)  # RGB order survives OpenCV's BGR files
    np.testing.assert_allclose(depth2, depth, atol=1e-6)
    np.testing.assert_array_equal(mask2, mask)
    with pytest.raises(InputError, match="real samples take no mask"):
        write_sample(tmp_path, "real", "00000", rgb, depth.astype(np.float32), mask)


def test_bad_dataset_is_one_clear_line(tmp_path: Path, dataset: Path) -> None:
    with pytest.raises(InputError, match="index.json: cannot read a dataset index"):
        read_index(tmp_path)
    (tmp_path / "index.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(InputError, match="expected format 'simgrasp-gan-dataset', found 'other'"):
        read_index(tmp_path)
    index = read_index(dataset)
    index["domains"]["sim"].append({"id": "00099"})
    (tmp_path / "index.json").write_text(json.dumps(index))
    (tmp_path / "sim").symlink_to(dataset / "sim")
    with pytest.raises(InputError, match="00099_rgb.png: missing or unreadable image"):
        load_domain(tmp_path, "sim")


# ---- config, pool, schedule, flips -------------------------------------------------------------


def test_shipped_configs() -> None:
    cpu, paper = load_gan_config("cyclegan"), load_gan_config("cyclegan_paper")
    for cfg in (cpu, paper):
        assert (cfg.model.layers, cfg.model.image_size, cfg.model.channels, cfg.model.classes) == (7, 128, 4, 3)
        assert (cfg.loss.lambda_cycle, cfg.loss.lambda_identity, cfg.loss.lambda_semantic) == (10.0, 1.0, 1.0)
        assert cfg.loss.identity_form == "paper" and cfg.loss.lambda_depth == cfg.loss.lambda_keep_object == 0.0
        assert (cfg.train.lr, cfg.train.beta1, cfg.train.pool_size, cfg.train.flip) == (2e-4, 0.5, 50, True)
        assert (cfg.depth.near, cfg.depth.far) == (0.2, 1.5)
    assert (cpu.model.ngf, cpu.model.ndf, cpu.train.epochs) == (16, 16, 20)
    assert (paper.model.ngf, paper.model.ndf, paper.train.epochs) == (64, 64, 200)
    assert parse_gan_config(cpu.to_dict(), "round trip") == cpu
    for lever, key in (("cyclegan_depth", "lambda_depth"), ("cyclegan_keep", "lambda_keep_object")):
        cfg = load_gan_config(lever)  # issue 11's levers: the shipped recipe with one term switched on
        on = {k: v for k, v in cfg.to_dict()["loss"].items() if v != cpu.to_dict()["loss"][k]}
        assert list(on) == [key] and cfg.model == cpu.model and cfg.train == cpu.train
    both = load_gan_config("cyclegan_both")  # the two levers together, each at its own weight
    on = {k: v for k, v in both.to_dict()["loss"].items() if v != cpu.to_dict()["loss"][k]}
    assert on == {"lambda_depth": load_gan_config("cyclegan_depth").loss.lambda_depth,
                  "lambda_keep_object": load_gan_config("cyclegan_keep").loss.lambda_keep_object}
    assert both.model == cpu.model and both.train == cpu.train


@pytest.mark.parametrize(("patch", "message"), [
    ({"loss": {"identity_form": "zhu"}}, r"key 'loss.identity_form': expected one of \['paper', 'original'\], found 'zhu'"),
    ({"model": {"ngf": 0}}, r"key 'model.ngf': expected an integer in \[1, 1024\], found 0"),
    ({"model": {"image_size": 96}}, r"key 'model.image_size': expected a multiple of 2\*\*layers = 128, found 96"),
    ({"train": {"epoch": 3}}, r"unknown key 'train.epoch'"),
    ({"depth": {"near": 1.0, "far": 0.5}}, r"key 'depth.far': expected a number > near = 1.0, found 0.5"),
])
def test_bad_config_is_one_clear_line(patch: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=f"x.yaml: {message}"):
        parse_gan_config(patch, "x.yaml")


def test_pool_returns_new_images_until_full_then_swaps_half() -> None:
    pool = ImagePool(size=3, seed=0)
    imgs = [torch.full((1, 1, 2, 2), float(i)) for i in range(200)]
    assert [pool.query(imgs[i])[0, 0, 0, 0].item() for i in range(3)] == [0.0, 1.0, 2.0]
    returned = [pool.query(imgs[i])[0, 0, 0, 0].item() for i in range(3, 200)]
    old = sum(r != i for r, i in zip(returned, range(3, 200), strict=True))
    assert 0.4 < old / len(returned) < 0.6  # an older image with probability ½
    assert len(pool) == 3
    off = ImagePool(0)
    assert torch.equal(off.query(imgs[5]), imgs[5]) and len(off) == 0  # size 0: pass-through


def test_pool_is_seeded_and_resumable() -> None:
    batches = [torch.rand(2, 1, 2, 2, generator=torch.Generator().manual_seed(i)) for i in range(20)]
    a, b = ImagePool(4, seed=7), ImagePool(4, seed=7)
    for x in batches[:10]:
        torch.testing.assert_close(a.query(x), b.query(x))
    c = ImagePool(4, seed=123)
    c.load_state_dict(a.state_dict())
    for x in batches[10:]:
        torch.testing.assert_close(a.query(x), c.query(x))


def test_lr_schedule() -> None:
    # 4 epochs, constant for the first half, then 1 − k/3: the last epoch still learns.
    assert [lr_factor(e, 4, 0.5) for e in range(4)] == pytest.approx([1, 1, 2 / 3, 1 / 3])
    assert [lr_factor(e, 40, 0.5) for e in (0, 19, 20, 39)] == pytest.approx([1, 1, 20 / 21, 1 / 21])


def test_hflip_moves_the_mask_with_its_image() -> None:
    gen = torch.Generator().manual_seed(0)
    mask = torch.randint(0, 3, (16, 4, 5), generator=gen)
    images = mask[:, None].float().repeat(1, 4, 1, 1)  # every channel equals the mask
    out, out_mask = hflip(images, mask, gen)
    assert out_mask is not None
    assert torch.equal(out[:, 0].long(), out_mask)
    flipped = [not torch.equal(out_mask[i], mask[i]) for i in range(16)]
    assert 2 <= sum(flipped) <= 14  # about half of them


# ---- training ----------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", [{"identity_form": "original", "lambda_depth": 1.0},
                                  {"lambda_semantic": 0.0, "lambda_identity": 0.0},
                                  {"semantic_in_generator": False}, {"lambda_keep_object": 2.0}])
def test_training_step_updates_all_four_networks(loss: dict) -> None:
    cfg = parse_gan_config({"model": {"ngf": 4, "ndf": 4}, "loss": loss, "train": {"pool_size": 2}}, "t.yaml")
    torch.manual_seed(0)
    gan = SemanticCycleGAN(cfg.model, cfg.depth)
    trainer = CycleGANTrainer(gan, cfg)
    x, y = torch.rand(2, 4, 128, 128) * 2 - 1, torch.rand(2, 4, 128, 128) * 2 - 1
    mask = torch.randint(0, 3, (2, 128, 128))
    names = ("g_xy", "g_yx", "d_x", "d_y")
    before = {k: [p.detach().clone() for p in getattr(gan, k).parameters()] for k in names}
    values = trainer.step(x, mask, y)
    assert all(np.isfinite(v) for v in values.values())
    for k in names:
        assert any(not torch.equal(a, b) for a, b in zip(before[k], getattr(gan, k).parameters(), strict=True)), k
    assert (values["depth"] > 0) == (cfg.loss.lambda_depth > 0)
    assert (values["keep"] > 0) == (cfg.loss.lambda_keep_object > 0)
    assert (values["sem_d"] > 0) == (cfg.loss.lambda_semantic > 0)
    assert (values["sem_g"] > 0) == (cfg.loss.lambda_semantic > 0 and cfg.loss.semantic_in_generator)
    assert (values["identity"] > 0) == (cfg.loss.lambda_identity > 0)
    assert values["g_total"] == pytest.approx(
        values["g_gan"] + 10 * values["cycle"] + cfg.loss.lambda_identity * values["identity"]
        + cfg.loss.lambda_semantic * values["sem_g"] + cfg.loss.lambda_depth * values["depth"]
        + cfg.loss.lambda_keep_object * values["keep"], rel=1e-5)


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "losses.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_short_training_lowers_the_loss_and_leaves_its_files(dataset: Path, tiny_config: Path,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = train_gan(tiny_config, dataset, out, progress=False)
    hist = result["history"]
    assert [r["epoch"] for r in hist] == [1, 2, 3]
    assert hist[-1]["g_total"] < hist[0]["g_total"]
    assert hist[-1]["cycle"] < hist[0]["cycle"]
    for name in ("config.yaml", "losses.csv", "losses.png", "train_state.pt", "cyclegan.pt"):
        assert (out / name).is_file(), name
    rows = _rows(out)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert float(rows[0]["g_total"]) == pytest.approx(hist[0]["g_total"], rel=1e-5)
    saved = load_gan_config(out / "config.yaml")
    assert isinstance(saved, GanConfig) and saved.model.ngf == 4 and saved.train.epochs == 3
    inf = load_inference(out / "cyclegan.pt", saved.model, saved.depth)
    assert inf.adapt(torch.zeros(4, 128, 128)).shape == (4, 128, 128)
    with pytest.raises(CheckpointError, match="a training state exists"):
        train_gan(tiny_config, dataset, out, progress=False)


@pytest.mark.slow
def test_resume_continues_from_the_saved_epoch(dataset: Path, tiny_config: Path, tmp_path: Path) -> None:
    straight = train_gan(tiny_config, dataset, tmp_path / "a", progress=False, limit=4)["history"]
    first = train_gan(tiny_config, dataset, tmp_path / "b", epochs_override=2, progress=False, limit=4)["history"]
    resumed = train_gan(tiny_config, dataset, tmp_path / "b", resume=True, progress=False, limit=4)["history"]
    assert len(first) == 2 and [r["epoch"] for r in resumed] == [1, 2, 3]
    assert resumed[:2] == first  # the saved epochs are kept, not retrained
    for key in ("g_total", "d_total", "cycle"):  # constant LR: resuming equals running straight through
        assert resumed[2][key] == pytest.approx(straight[2][key], rel=1e-5)
    assert len(_rows(tmp_path / "b")) == 3


def test_resume_with_another_architecture_is_refused(dataset: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "a.yaml"
    cfg.write_text(yaml.safe_dump({**TINY_CONFIG, "train": {**TINY_CONFIG["train"], "epochs": 1}}))
    train_gan(cfg, dataset, tmp_path / "run", progress=False, limit=2)
    cfg.write_text(yaml.safe_dump({**TINY_CONFIG, "model": {"ngf": 8, "ndf": 4}}))
    with pytest.raises(CheckpointError, match=r"train_state.pt: model.ngf: expected 8 \(from the config\), found 4"):
        train_gan(cfg, dataset, tmp_path / "run", resume=True, progress=False, limit=2)


def test_dataset_of_another_size_is_refused(tmp_path: Path) -> None:
    write_synthetic_dataset(tmp_path / "d", n=1, size=64)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(TINY_CONFIG))
    with pytest.raises(InputError, match="expected 128x128 images .*found 64x64"):
        train_gan(cfg, tmp_path / "d", tmp_path / "run", progress=False)


def test_semantic_losses_reach_the_right_discriminator() -> None:
    """D_X segments the sim image x, D_Y segments the translated G_XY(x), both against x's mask.

    Every full (segmenting) forward of each discriminator is recorded with a hook, so a swap of
    D_X and D_Y, or a segmentation of y or of G_YX(y), is seen; the logged losses are then
    recomputed from the recorded logits with plain cross-entropy.
    """
    cfg = parse_gan_config({"model": {"ngf": 4, "ndf": 4}, "loss": {"semantic_in_generator": True},
                            "train": {"pool_size": 2}}, "t.yaml")
    torch.manual_seed(0)
    gan = SemanticCycleGAN(cfg.model, cfg.depth)
    trainer = CycleGANTrainer(gan, cfg)
    x, y = torch.rand(2, 4, 128, 128) * 2 - 1, torch.rand(2, 4, 128, 128) * 2 - 1
    mask = torch.randint(0, 3, (2, 128, 128))
    calls: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {"d_x": [], "d_y": [], "g_xy": []}

    def hook(name: str):
        def record(module, inputs, output) -> None:
            out = output[1] if isinstance(output, tuple) else output
            calls[name].append((inputs[0].detach().clone(), out.detach().clone()))
        return record

    for name in calls:
        getattr(gan, name).register_forward_hook(hook(name))
    values = trainer.step(x, mask, y)
    translated = [out for inp, out in calls["g_xy"] if torch.equal(inp, x)]
    assert len(translated) == 1  # G_XY(x), computed once
    assert len(calls["d_x"]) == 1 and torch.equal(calls["d_x"][0][0], x)  # D_X segments x only
    assert len(calls["d_y"]) == 2  # generator step, then discriminator step
    for inp, _ in calls["d_y"]:
        torch.testing.assert_close(inp, translated[0])  # D_Y segments G_XY(x) only
        assert not torch.equal(inp, y)
    ce = torch.nn.functional.cross_entropy
    seg_dx, seg_dy_g, seg_dy_d = calls["d_x"][0][1], calls["d_y"][0][1], calls["d_y"][1][1]
    assert values["sem_d"] == pytest.approx(float(ce(seg_dx, mask) + ce(seg_dy_d, mask)), rel=1e-5)
    assert values["sem_g"] == pytest.approx(float(ce(seg_dy_g, mask)), rel=1e-5)
