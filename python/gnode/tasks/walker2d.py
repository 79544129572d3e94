"""Walker2d kinematics: rollouts of Gymnasium's `Walker2d-v5` (MuJoCo) and next-observation prediction from
the irregularly sampled past, after the Walker2d task of Lechner & Hasani (2020, "Learning long-term
dependencies in irregularly-sampled time series", ODE-LSTM), used by Kim, Can & Krishnamurthy (2023, sec. 5.5).

Generation (`generate_walker2d`, `gnode data walker2d`): each episode resets the environment with its own seed
and records the 17-d observation (qpos without x, qvel) and the 6-d action at every control step (dt = 0.008 s:
frame_skip 4 x 0.002 s) for `steps` steps. `terminate_when_unhealthy=False`, so episodes keep going after the
walker falls. The policy mix, drawn per episode from the episode's generator (documented in the manifest):

- a PD controller on the six joint angles toward open-loop periodic targets
  q*_j(t) = A_j sin(2 pi f t + phi_j), f ~ U[0.5, 2] Hz, A_j ~ U[0.2, 0.8] rad, phi_j ~ U[0, 2 pi),
  action_j = clip(kp (q*_j - q_j) - kd dq_j, -1, 1) with kp = 2, kd = 0.1, which makes the walker stride,
  stumble and fall in varied ways,
- plus Ornstein-Uhlenbeck action noise (correlation time 0.1 s) of a per-episode scale ~ U[0.1, 0.6],
- and with probability 0.25 an episode of pure noise (scale 1), the random-action regime.

Everything is drawn from numpy Generators seeded from `seed`, and MuJoCo's integration is deterministic,
so the same seed gives the same data (on the same MuJoCo version; it is recorded). The result is cached as
`walker2d.npz` with `manifest.json` (versions, seeds, policy, configuration) in the output folder.

Task (`make_walker2d`): episodes are split 75/10/15 into train/val/test (whole episodes, so no window is
shared across splits). Each episode keeps a random `1 - drop` of its time steps (always the first; drop = 0.1
as in ODE-LSTM) and is cut into windows of `window` kept samples every `stride` samples; each window's times
start at 0 (one time unit = one control step). Inputs are observation and action at each kept sample, the
target at each sample is its observation: a model whose output at t_k has seen the samples before t_k predicts
the next observation from the irregularly sampled past, over a gap it must account for (ODE models through
the time they integrate, discrete ones through the time-gap channel). Observations and actions are
standardised with training-split statistics; targets use the observations' statistics, so the MSE is in
units of each channel's standard deviation.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from gnode.atomic import atomic_write_bytes, atomic_write_json
from gnode.tasks.data import TaskData
from gnode.tasks.sequences import DataFormatError, Standardization, check_finite, regression_split

ENV_ID = "Walker2d-v5"
DATA_FILE, MANIFEST = "walker2d.npz", "manifest.json"
OBS_DIM, ACT_DIM = 17, 6
OBSERVATION_NAMES = (
    "rootz",
    "rooty",
    "thigh_joint",
    "leg_joint",
    "foot_joint",
    "thigh_left_joint",
    "leg_left_joint",
    "foot_left_joint",
    "v_rootx",
    "v_rootz",
    "v_rooty",
    "v_thigh_joint",
    "v_leg_joint",
    "v_foot_joint",
    "v_thigh_left_joint",
    "v_leg_left_joint",
    "v_foot_left_joint",
)  # Gymnasium's Walker2d observation table
POLICY = {
    "pd_targets": "q*_j(t) = A_j sin(2 pi f t + phi_j); f ~ U[0.5, 2] Hz, A_j ~ U[0.2, 0.8] rad, phi_j ~ U[0, 2 pi)",
    "pd_gains": {"kp": 2.0, "kd": 0.1},
    "noise": "Ornstein-Uhlenbeck, correlation time 0.1 s, stationary std = scale ~ U[0.1, 0.6]",
    "pure_noise_probability": 0.25,
    "action": "clip(kp (q* - q) - kd dq + noise, -1, 1); pure-noise episodes: clip(noise with scale 1, -1, 1)",
}


@dataclass(frozen=True)
class Walker2dGeneration:
    """How the rollouts are generated: `episodes` of `steps` control steps, seeded by `seed`."""

    episodes: int = 64
    steps: int = 256
    seed: int = 0

    def __post_init__(self):
        for name, low in (("episodes", 4), ("steps", 2)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"Walker2dGeneration: {name} must be an integer >= {low}, got {v!r}")
        if not isinstance(self.seed, int):
            raise TypeError(f"Walker2dGeneration: seed must be an integer, got {self.seed!r}")


def _need_gymnasium():
    try:
        import gymnasium
        import mujoco
    except ImportError as e:
        raise ImportError(
            f"generating Walker2d data needs MuJoCo and Gymnasium ({e.name} is missing): "
            "pip install 'gymnasium[mujoco]' (or pip install -e '.[data]')"
        ) from None
    return gymnasium, mujoco


def _episode(env, rng: np.random.Generator, steps: int, episode_seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """One rollout: (observations (steps, 17), actions (steps, 6), the episode's policy parameters)."""
    dt = env.unwrapped.dt
    obs, _ = env.reset(seed=episode_seed)
    pure_noise = bool(rng.random() < POLICY["pure_noise_probability"])
    freq = rng.uniform(0.5, 2.0)
    amp = rng.uniform(0.2, 0.8, size=ACT_DIM)
    phase = rng.uniform(0, 2 * math.pi, size=ACT_DIM)
    scale = 1.0 if pure_noise else rng.uniform(0.1, 0.6)
    theta = dt / 0.1  # OU: x <- x - theta x + sqrt(2 theta) scale N(0, 1), stationary std = scale
    noise = scale * rng.standard_normal(ACT_DIM)
    kp, kd = POLICY["pd_gains"]["kp"], POLICY["pd_gains"]["kd"]
    observations, actions = np.empty((steps, OBS_DIM)), np.empty((steps, ACT_DIM))
    for k in range(steps):
        if pure_noise:
            action = noise
        else:
            target = amp * np.sin(2 * math.pi * freq * k * dt + phase)
            action = kp * (target - obs[2:8]) - kd * obs[11:17] + noise
        action = np.clip(action, -1.0, 1.0)
        observations[k], actions[k] = obs, action
        obs, *_ = env.step(action.astype(np.float32))
        noise = noise - theta * noise + math.sqrt(2 * theta) * scale * rng.standard_normal(ACT_DIM)
    params = {
        "seed": episode_seed,
        "pure_noise": pure_noise,
        "frequency_hz": freq,
        "amplitudes": amp.tolist(),
        "phases": phase.tolist(),
        "noise_scale": scale,
    }
    return observations, actions, params


def generate_walker2d(config: Walker2dGeneration, out: str | Path, *, progress: bool = True) -> Path:
    """Roll out `config.episodes` episodes into `out`/walker2d.npz with `out`/manifest.json (module docstring);
    returns the folder. An existing cache made with the same configuration is reused; one made with another is
    an error (never overwritten)."""
    from tqdm.auto import tqdm

    out = Path(out)
    if (out / MANIFEST).exists():
        manifest = read_manifest(out)
        if manifest.get("generation") == asdict(config):
            return out
        raise DataFormatError(
            f"{out} already holds Walker2d data generated with {manifest.get('generation')}; "
            f"use another folder for {asdict(config)}"
        )
    gym, mujoco = _need_gymnasium()
    env = gym.make(ENV_ID, terminate_when_unhealthy=False)
    seeds = np.random.SeedSequence(config.seed).spawn(config.episodes)
    obs = np.empty((config.episodes, config.steps, OBS_DIM))
    act = np.empty((config.episodes, config.steps, ACT_DIM))
    episodes = []
    try:
        for e in tqdm(range(config.episodes), desc="walker2d", unit="episode", disable=not progress):
            rng = np.random.default_rng(seeds[e])
            obs[e], act[e], params = _episode(env, rng, config.steps, int(seeds[e].generate_state(1)[0]))
            episodes.append(params)
    finally:
        env.close()
    check_finite(list(obs), where=f"generated {ENV_ID} observations", channel_names=OBSERVATION_NAMES)
    buf = io.BytesIO()
    np.savez_compressed(buf, observations=obs, actions=act, dt=np.float64(env.unwrapped.dt))
    atomic_write_bytes(out / DATA_FILE, buf.getvalue())
    manifest = {
        "env": ENV_ID,
        "env_kwargs": {"terminate_when_unhealthy": False},
        "generation": asdict(config),
        "control_dt_s": float(env.unwrapped.dt),
        "observation_names": list(OBSERVATION_NAMES),
        "policy": POLICY,
        "episodes": episodes,
        "sha256": hashlib.sha256((out / DATA_FILE).read_bytes()).hexdigest(),
        "versions": {
            "gymnasium": gym.__version__,
            "mujoco": mujoco.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
    }
    atomic_write_json(out / MANIFEST, manifest)  # last: a folder with a manifest holds complete data
    return out


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataFormatError(
            f"{folder} holds no Walker2d data ({MANIFEST} missing); generate it with "
            f"`gnode data walker2d --out {folder}`"
        ) from None
    except json.JSONDecodeError as e:
        raise DataFormatError(
            f"{path} is not valid JSON ({e}); regenerate the folder with `gnode data walker2d`"
        ) from e


def load_walker2d(folder: str | Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """(observations (E, S, 17), actions (E, S, 6), manifest) from a folder made by `generate_walker2d`, checked
    against the manifest's checksum and shapes."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    path = folder / DATA_FILE
    if not path.is_file():
        raise DataFormatError(f"{folder} has {MANIFEST} but no {DATA_FILE}; regenerate it with `gnode data walker2d`")
    if hashlib.sha256(path.read_bytes()).hexdigest() != manifest.get("sha256"):
        raise DataFormatError(f"{path} does not match the checksum in {MANIFEST} (modified or damaged); regenerate it")
    with np.load(path) as z:
        missing = {"observations", "actions"} - set(z.files)
        if missing:
            raise DataFormatError(
                f"{path}: lacks {sorted(missing)}; expected observations (E, S, 17), actions (E, S, 6)"
            )
        obs, act = z["observations"], z["actions"]
    if obs.ndim != 3 or obs.shape[2] != OBS_DIM or act.shape != obs.shape[:2] + (ACT_DIM,):
        raise DataFormatError(
            f"{path}: observations {obs.shape} and actions {act.shape} must be (E, S, {OBS_DIM}) and (E, S, {ACT_DIM})"
        )
    check_finite(list(obs), where=f"{path} observations", channel_names=OBSERVATION_NAMES)
    check_finite(list(act), where=f"{path} actions")
    return obs, act, manifest


def default_folder(generation: Walker2dGeneration) -> Path:
    """Where generated data goes when no folder is given: one folder per generation setting."""
    return Path("data") / f"walker2d-{generation.episodes}x{generation.steps}-seed{generation.seed}"


@dataclass(frozen=True)
class Walker2dConfig:
    """The prediction task built from generated rollouts (module docstring).

    data:    folder of `generate_walker2d` (`gnode data walker2d --out DIR`), generated there first if it holds
             no data; None: data/walker2d-<episodes>x<steps>-seed<seed> under the working directory.
    generation: how to generate it when the folder is empty.
    drop:    fraction of time steps dropped at random (irregular sampling; 0.1 as in ODE-LSTM).
    window, stride: samples per sequence and between sequence starts.
    seed:    seeds the episode split and the dropped steps.
    """

    data: str | None = None
    generation: Walker2dGeneration = Walker2dGeneration()
    drop: float = 0.1
    window: int = 64
    stride: int = 32
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.generation, dict):
            object.__setattr__(self, "generation", Walker2dGeneration(**self.generation))
        if not (isinstance(self.drop, (int, float)) and 0 <= self.drop < 1):
            raise ValueError(f"Walker2dConfig: drop must lie in [0, 1), got {self.drop!r}")
        for name in ("window", "stride"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 2:
                raise ValueError(f"Walker2dConfig: {name} must be an integer >= 2, got {v!r}")


def make_walker2d(
    config: Walker2dConfig | None = None, *, dtype: torch.dtype | None = None, progress: bool = True
) -> TaskData:
    """Train/val/test splits of next-observation prediction on Walker2d rollouts (module docstring)."""
    config = config or Walker2dConfig()
    folder = Path(config.data) if config.data is not None else default_folder(config.generation)
    if not (folder / MANIFEST).exists():
        generate_walker2d(config.generation, folder, progress=progress)
    obs, act, manifest = load_walker2d(folder)
    if manifest.get("generation") != asdict(config.generation):
        g = manifest.get("generation") or {}
        raise DataFormatError(
            f"{folder} holds Walker2d data generated with {g} but the task asks for "
            f"{asdict(config.generation)}; give --episodes {g.get('episodes')} --steps "
            f"{g.get('steps')} --generation-seed {g.get('seed')} to use it, or another --data"
        )
    episodes = obs.shape[0]
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(episodes)
    n_test, n_val = max(1, round(0.15 * episodes)), max(1, round(0.10 * episodes))
    parts = {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}
    keep = rng.random(obs.shape[:2]) >= config.drop
    keep[:, 0] = True

    def windows(eps):
        ts, xs, ys = [], [], []
        for e in sorted(eps.tolist()):
            idx = np.flatnonzero(keep[e])
            for s in range(0, len(idx) - config.window + 1, config.stride):
                w = idx[s : s + config.window]
                ts.append((w - w[0]).astype(np.float64))
                xs.append(np.concatenate([obs[e, w], act[e, w]], axis=1))
                ys.append(obs[e, w])
        return ts, xs, ys

    raw = {name: windows(eps) for name, eps in parts.items()}
    if not raw["train"][0]:
        raise DataFormatError(
            f"{folder}: episodes of {obs.shape[1]} steps are too short for windows of "
            f"{config.window} kept samples; lower --window or generate longer episodes"
        )
    train_kept = np.concatenate([keep[e] for e in parts["train"]])
    stats_obs = Standardization.fit([obs[e][keep[e]] for e in parts["train"]])
    stats_act = Standardization.fit([act[e][keep[e]] for e in parts["train"]])

    def split(ts, xs, ys):
        xs = [np.concatenate([stats_obs.apply(x[:, :OBS_DIM]), stats_act.apply(x[:, OBS_DIM:])], axis=1) for x in xs]
        return regression_split(ts, xs, [stats_obs.apply(y) for y in ys], dtype=dtype)

    data = {name: split(*raw[name]) if raw[name][0] else None for name in raw}
    empty = [name for name, s in data.items() if s is None]
    if empty:
        raise DataFormatError(
            f"{folder}: the {', '.join(empty)} split(s) got no window of {config.window} samples "
            f"from {obs.shape[0]} episodes of {obs.shape[1]} steps; generate more or longer episodes"
        )
    meta = {
        "task": "walker2d",
        "kind": "regression",
        "config": asdict(config),
        "channels": list(OBSERVATION_NAMES) + [f"action_{j}" for j in range(ACT_DIM)],
        "targets": list(OBSERVATION_NAMES),
        "control_dt_s": manifest.get("control_dt_s"),
        "standardization": {"observations": stats_obs.to_dict(), "actions": stats_act.to_dict()},
        "episodes": {k: sorted(v.tolist()) for k, v in parts.items()},
        "kept_fraction_train": float(train_kept.mean()),
        "sizes": {k: len(v) for k, v in data.items()},
        "source": str(folder),
        "data_sha256": manifest.get("sha256"),
    }
    return TaskData(data["train"], data["val"], data["test"], meta=meta)
