"""Checkpoints: inference file, training state and shipped policy — round trips and refusals."""

import pickle
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from app.errors import CheckpointError, InputError
from models.checkpoint import (
    INFERENCE_FORMAT,
    load_file,
    load_inference,
    load_training,
    save_file,
    save_inference,
    save_training,
)
from models.cyclegan import CycleGANTrainer, GanConfig, SemanticCycleGAN, TrainConfig
from models.policy_net import PosePolicy, RGBDExtractor, export_policy, load_policy
from models.preprocess import DepthRange
from models.unet import UNetConfig

torch.set_num_threads(1)
TINY = UNetConfig(ngf=4, ndf=4)


@pytest.fixture(scope="module")
def gan() -> SemanticCycleGAN:
    torch.manual_seed(0)
    return SemanticCycleGAN(TINY, DepthRange())


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(2, 4, 128, 128) * 2 - 1


def _pwn(path: str) -> None:
    Path(path).write_text("code ran")


class Evil:
    """Unpickling this would run ``_pwn`` (a file appears)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (_pwn, (self.path,))


# ---- the shipped CycleGAN inference file ------------------------------------------------------


def test_inference_round_trip_float32_is_exact(gan: SemanticCycleGAN, image: torch.Tensor, tmp_path: Path) -> None:
    path = tmp_path / "cyclegan.pt"
    save_inference(path, gan, "float32", {"epoch": 3})
    inf = load_inference(path, TINY, DepthRange())
    ref = gan.inference()
    assert not inf.training
    torch.testing.assert_close(inf.adapt(image), ref.adapt(image), rtol=0, atol=0)
    assert torch.equal(inf.segment(image), ref.segment(image))
    assert torch.equal(inf.segment_real(image), ref.segment_real(image))
    assert load_file(path, INFERENCE_FORMAT)["info"] == {"epoch": 3}


def test_inference_float16_is_close_and_half_the_size(gan: SemanticCycleGAN, image: torch.Tensor,
                                                      tmp_path: Path) -> None:
    size32 = save_inference(tmp_path / "a.pt", gan, "float32")
    size16 = save_inference(tmp_path / "b.pt", gan, "float16")
    assert size16 < 0.6 * size32
    inf = load_inference(tmp_path / "b.pt")
    assert all(p.dtype == torch.float32 for p in inf.parameters())
    torch.testing.assert_close(inf.adapt(image), gan.inference().adapt(image), rtol=0, atol=5e-3)


def test_shipped_size_at_ngf_16_is_under_20_mb(tmp_path: Path) -> None:
    size = save_inference(tmp_path / "c.pt", SemanticCycleGAN(UNetConfig(ngf=16, ndf=16), DepthRange()))
    assert 15e6 < size < 20e6  # 3 × 2.6 M weights as float16


def test_process_frame(gan: SemanticCycleGAN) -> None:
    rgb = np.full((128, 128, 3), 200, np.uint8)
    depth = np.full((128, 128), 0.45, np.float32)
    out = gan.inference().process_frame(rgb, depth)
    assert out.rgb.shape == (128, 128, 3) and out.rgb.dtype == np.uint8
    assert out.depth.shape == (128, 128) and out.depth.dtype == np.float32
    assert out.mask.shape == (128, 128) and out.mask.dtype == np.uint8 and out.mask.max() <= 2
    with pytest.raises(InputError, match="expected"):
        gan.inference().process_frame(rgb[:64], depth[:64])


def test_mismatched_architecture_is_one_clear_line(gan: SemanticCycleGAN, tmp_path: Path) -> None:
    path = tmp_path / "cyclegan.pt"
    save_inference(path, gan)
    with pytest.raises(CheckpointError, match=r"cyclegan.pt: model.ngf: expected 16 \(from the config\), found 4"):
        load_inference(path, UNetConfig(ngf=16, ndf=4))
    with pytest.raises(CheckpointError, match=r"depth.far: expected 2.0 \(from the config\), found 1.5"):
        load_inference(path, TINY, DepthRange(far=2.0))


def test_wrong_weights_are_refused(gan: SemanticCycleGAN, tmp_path: Path) -> None:
    path = tmp_path / "bad.pt"
    save_inference(path, gan)
    obj = torch.load(path, weights_only=True)
    obj["model"]["ngf"] = 8  # metadata says 8, weights are for 4
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match="bad.pt: g_yx weights do not fit the network") as e:
        load_inference(path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(("content", "message"), [
    (None, "no such file"),
    (b"", "cannot load as plain tensors"),
    (b"not a checkpoint at all", "cannot load as plain tensors"),
])
def test_missing_or_corrupt_file(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "x.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=f"x.pt: {message}") as e:
        load_inference(path)
    assert "\n" not in str(e.value)


def test_truncated_file(gan: SemanticCycleGAN, tmp_path: Path) -> None:
    path = tmp_path / "t.pt"
    save_inference(path, gan)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="t.pt: cannot load as plain tensors"):
        load_inference(path)


def test_other_format_is_refused(tmp_path: Path) -> None:
    save_file(tmp_path / "p.pt", {"format": "simgrasp-pose-policy", "version": 1})
    with pytest.raises(CheckpointError, match="expected format 'simgrasp-cyclegan-inference', found 'simgrasp-pose-policy'"):
        load_inference(tmp_path / "p.pt")
    save_file(tmp_path / "v.pt", {"format": INFERENCE_FORMAT, "version": 99})
    with pytest.raises(CheckpointError, match="version 1, found 99"):
        load_inference(tmp_path / "v.pt")


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_refused_without_running_code(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    payload = {"format": INFERENCE_FORMAT, "version": 1, "g_yx": Evil(str(marker))}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        with path.open("wb") as f:
            pickle.dump(payload, f, protocol=2)
    with pytest.raises(CheckpointError, match=r"evil.pt: cannot load as plain tensors .*weights_only refuses "
                                              r"\(Unsupported global: GLOBAL test_checkpoint._pwn"):
        load_inference(path)
    with pytest.raises(CheckpointError, match="evil.pt: cannot load as plain tensors"):
        load_policy(path)
    assert not marker.exists()


def test_save_refuses_non_plain_metadata(tmp_path: Path, gan: SemanticCycleGAN) -> None:
    with pytest.raises(TypeError, match=r"info.when: \w*Path is not a plain type"):
        save_inference(tmp_path / "m.pt", gan, info={"when": Path("/")})


# ---- training state ----------------------------------------------------------------------------


def test_training_state_resumes_identically(tmp_path: Path) -> None:
    cfg = GanConfig(model=TINY, train=TrainConfig(pool_size=2))
    torch.manual_seed(0)
    x, y = torch.rand(1, 4, 128, 128) * 2 - 1, torch.rand(1, 4, 128, 128) * 2 - 1
    mask = torch.randint(0, 3, (1, 128, 128))
    a = CycleGANTrainer(SemanticCycleGAN(TINY, DepthRange()), cfg)
    a.step(x, mask, y)
    save_training(tmp_path / "s.pt", a, 5, [{"epoch": 1.0, "g_total": 2.5}], cfg.to_dict())
    next_a = a.step(x, mask, y)
    b = CycleGANTrainer(SemanticCycleGAN(TINY, DepthRange()), cfg)
    epoch, history = load_training(tmp_path / "s.pt", b)
    assert epoch == 5 and history == [{"epoch": 1.0, "g_total": 2.5}]
    assert len(b.pool_x) == 1 and len(b.pool_y) == 1
    assert b.step(x, mask, y) == next_a  # same weights, optimiser moments, pools and dropout draws


def test_training_state_of_another_architecture_is_refused(tmp_path: Path) -> None:
    cfg = GanConfig(model=TINY)
    a = CycleGANTrainer(SemanticCycleGAN(TINY, DepthRange()), cfg)
    save_training(tmp_path / "s.pt", a, 1, [], cfg.to_dict())
    other = UNetConfig(ngf=4, ndf=8)
    b = CycleGANTrainer(SemanticCycleGAN(other, DepthRange()), GanConfig(model=other))
    with pytest.raises(CheckpointError, match="model.ndf: expected 8 .*found 4"):
        load_training(tmp_path / "s.pt", b)


# ---- the shipped pose policy -------------------------------------------------------------------


class DummyPoseEnv(gym.Env):
    """Random RGB-D-like observations; every episode is one step."""

    observation_space = gym.spaces.Box(0.0, 1.0, (4, 36, 36), np.float32)
    action_space = gym.spaces.Box(np.array([-1, -1, -0.5, 0], np.float32), np.array([1, 1, 0.5, 2], np.float32))

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        return self.observation_space.sample(), 0.0, True, False, {}


def _ppo(**extractor: object) -> PPO:
    kwargs = {"features_extractor_class": RGBDExtractor, "normalize_images": False,
              "features_extractor_kwargs": {"features_dim": 32, "channels": (8, 16, 16), **extractor},
              "net_arch": {"pi": [32, 16], "vf": [32]}}
    return PPO("MlpPolicy", DummyPoseEnv(), policy_kwargs=kwargs, n_steps=16, batch_size=16, seed=0, device="cpu")


def test_export_load_predict_equality(tmp_path: Path) -> None:
    model = _ppo()
    with torch.no_grad():
        model.policy.action_net.weight.mul_(300.0)  # push some means past the bounds: clipping matters
    obs = np.stack([DummyPoseEnv.observation_space.sample() for _ in range(8)])
    expected, _ = model.predict(obs, deterministic=True)
    export_policy(model, tmp_path / "policy.pt", {"steps": 0})
    policy = load_policy(tmp_path / "policy.pt")
    assert isinstance(policy, PosePolicy) and policy.meta == {"steps": 0} and policy.obs_size == 36
    got = policy.predict(obs)
    assert np.allclose(got, expected, atol=1e-6)
    assert np.allclose(policy.predict(obs[0]), model.predict(obs[0], deterministic=True)[0], atol=1e-6)
    assert np.any(got == DummyPoseEnv.action_space.high) or np.any(got == DummyPoseEnv.action_space.low)
    assert np.all(got >= DummyPoseEnv.action_space.low) and np.all(got <= DummyPoseEnv.action_space.high)
    with pytest.raises(InputError, match=r"expected observation \(4, 36, 36\), found \(4, 32, 32\)"):
        policy.predict(obs[0, :, :32, :32])


def test_extractor_is_sized_by_a_dry_pass() -> None:
    space = gym.spaces.Box(0.0, 1.0, (4, 64, 64), np.float32)
    ext = RGBDExtractor(space)  # defaults: NatureCNN convs, 64 → 15 → 6 → 4
    assert ext.linear[0].in_features == 64 * 4 * 4 and ext.features_dim == 256
    assert ext(torch.zeros(2, 4, 64, 64)).shape == (2, 256)
    with pytest.raises(InputError, match=r"observation \(4, 8, 8\) too small"):
        RGBDExtractor(gym.spaces.Box(0.0, 1.0, (4, 8, 8), np.float32))


def test_export_refuses_other_extractors(tmp_path: Path) -> None:
    model = PPO("MlpPolicy", DummyPoseEnv(), n_steps=16, batch_size=16, device="cpu")
    with pytest.raises(InputError, match="expected an RGBDExtractor policy, found FlattenExtractor"):
        export_policy(model, tmp_path / "p.pt")


def test_policy_with_wrong_weights_is_refused(tmp_path: Path) -> None:
    export_policy(_ppo(), tmp_path / "p.pt")
    obj = torch.load(tmp_path / "p.pt", weights_only=True)
    obj["arch"]["pi_layers"] = [32, 8]
    torch.save(obj, tmp_path / "p.pt")
    with pytest.raises(CheckpointError, match="p.pt: weights do not fit the network built from its metadata"):
        load_policy(tmp_path / "p.pt")
