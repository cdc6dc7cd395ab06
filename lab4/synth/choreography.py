"""Choreography: dance moves as joint angles over time, cross-faded from one move to the next."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Angles in radians. Arms: "abd" swings the segment in the picture plane (0 hanging down,
# pi/2 straight out sideways, pi straight up, negative across the body); "flex" lifts it
# towards the camera. Legs: "hip_abd" spreads the leg sideways, "hip_flex" lifts the
# thigh forward, "knee" bends the shin back. x is the dancer's place across the frame (a
# fraction of its width), x_off a move's sway around it, bounce a hop in standing heights.
POSE_PARAMS: tuple[str, ...] = (
    "x", "x_off", "yaw", "lean", "bow", "bounce", "head_tilt",
    "r_sh_abd", "r_sh_flex", "r_el_abd", "r_el_flex",
    "l_sh_abd", "l_sh_flex", "l_el_abd", "l_el_flex",
    "r_hip_abd", "r_hip_flex", "r_knee",
    "l_hip_abd", "l_hip_flex", "l_knee",
)  # fmt: skip
_REST: dict[str, float] = {
    "r_sh_abd": 0.12, "l_sh_abd": 0.12, "r_sh_flex": 0.05, "l_sh_flex": 0.05,
    "r_el_abd": 0.1, "l_el_abd": 0.1, "r_el_flex": 0.3, "l_el_flex": 0.3,
    "r_hip_abd": 0.05, "l_hip_abd": 0.05,
}  # fmt: skip

BLEND_BEATS = 1.0  # cross-fade between consecutive moves
_STRIDE = 0.75  # standing heights travelled per full gait cycle


@dataclass(frozen=True)
class Move:
    """One move of a choreography, `start` and `duration` in beats."""

    name: str
    start: float
    duration: float
    amplitude: float
    lead: int  # -1: the dancer's right side leads, +1: the left
    facing: float  # a small turn away from the camera held during the move
    x0: float
    x1: float  # == x0 except for walks

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass(frozen=True)
class Stage:
    """Where and how fast a dataset style dances: places across the frame (fractions of its
    width), how often the dancer walks to another one and how far, the tempo range."""

    x_range: tuple[float, float]
    start_x: tuple[float, float]
    walk_chance: float
    min_walk: float
    bpm: tuple[float, float]
    amplitude: tuple[float, float]
    # The chance that a dance move is danced turned away from the camera, side-on or from the
    # back (held for the whole move), and the walking pace in standing heights per second.
    away_chance: float = 0.0
    walk_speed: float = 0.7
    moves_between_walks: int = 2


# The turns a move turned away from the camera holds: profile either way, or the back.
AWAY_FACINGS = (math.pi / 2, -math.pi / 2, math.pi)

STAGES: dict[str, Stage] = {
    "variety": Stage((0.22, 0.78), (0.32, 0.68), 0.6, 0.2, (92, 128), (0.75, 1.1)),
    # The real footage: a dancer who walks about the stage between dances (the centre's 5th-95th
    # percentile over 1,000 frames spans about 19 % of the width), turns to profile or to the back
    # for whole moves, at a pace where consecutive frames differ little (42-43 dB apart).
    "studio": Stage((0.35, 0.65), (0.42, 0.58), 0.7, 0.06, (60, 76), (0.6, 0.75), away_chance=0.15,
                    walk_speed=0.55, moves_between_walks=1),
}


@dataclass(frozen=True)
class Style:
    """Per-video dancing style."""

    bpm: float
    amplitude: float
    first_beat: float  # the beat at frame 0: videos start in the middle of a move
    start_x: float


Params = dict[str, np.ndarray]


def _smootherstep(u: np.ndarray) -> np.ndarray:
    # C2-smooth 0 -> 1 ease; f(u) + f(1 - u) == 1, so two cross-faded moves' weights sum to 1.
    u = np.clip(u, 0.0, 1.0)
    return u * u * u * (u * (6.0 * u - 15.0) + 10.0)


def _rise(beats: np.ndarray, period: float) -> np.ndarray:
    """0 -> 1 -> 0 once per `period` beats, starting at 0."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * beats / period)


def _sides(lead: int) -> tuple[str, str]:
    return ("r", "l") if lead < 0 else ("l", "r")


def _set_arm(p: Params, side: str, sh_abd, sh_flex, el_abd, el_flex) -> None:
    p[f"{side}_sh_abd"], p[f"{side}_sh_flex"] = sh_abd, sh_flex
    p[f"{side}_el_abd"], p[f"{side}_el_flex"] = el_abd, el_flex


def _groove(b: np.ndarray, m: Move, p: Params) -> None:
    """Knees dip on every beat, fists pump in front of the chest in turn."""
    a = m.amplitude
    dip = 0.25 * a * _rise(b, 1.0)
    swing = np.sin(np.pi * b)
    for side, sign in (("r", 1.0), ("l", -1.0)):
        p[f"{side}_knee"], p[f"{side}_hip_flex"] = dip, 0.5 * dip
        _set_arm(p, side, 0.35 + 0.1 * sign * swing, 0.3, -(1.7 + 0.6 * a * sign * swing), 0.5)
    p["lean"] = 0.06 * a * swing
    p["head_tilt"] = 0.1 * a * np.sin(np.pi * b + 0.5)


def _arm_wave(b: np.ndarray, m: Move, p: Params) -> None:
    """Arms held out sideways with a wave travelling through them."""
    a = m.amplitude
    for side, phase in (("r", 0.0), ("l", m.lead * np.pi / 2)):
        wave = np.pi * b + phase
        _set_arm(p, side, 1.45 + 0.2 * np.sin(wave), 0.0, 1.5 + 0.8 * a * np.sin(wave - 0.9), 0.0)
        p[f"{side}_knee"] = 0.15 * _rise(b, 1.0)
    p["lean"] = 0.08 * a * np.sin(np.pi * b / 2)


def _arms_up(b: np.ndarray, m: Move, p: Params) -> None:
    """Both arms rise slowly overhead and come down again over four beats, knees bouncing."""
    up = _rise(b, 4.0)
    for side in ("r", "l"):
        lift = 0.2 + 2.35 * m.amplitude * up
        _set_arm(p, side, lift, 0.1, lift + 0.25 * up, 0.1)
        p[f"{side}_knee"] = 0.3 * (1.0 - up)
        p[f"{side}_hip_flex"] = 0.15 * (1.0 - up)


def _step_side(b: np.ndarray, m: Move, p: Params) -> None:
    """Step-touch from side to side, arms opening as the legs open."""
    a = m.amplitude
    p["x_off"] = 0.05 * a * m.lead * np.sin(np.pi * b / 2)
    open_ = np.abs(np.cos(np.pi * b / 2))
    p["lean"] = -0.07 * a * m.lead * np.cos(np.pi * b / 2)
    for side in ("r", "l"):
        p[f"{side}_hip_abd"] = 0.05 + 0.2 * a * open_
        p[f"{side}_knee"] = 0.2 * (1.0 - open_)
        _set_arm(p, side, 0.3 + 0.7 * a * open_, 0.2, 0.6 + 1.2 * a * open_, 0.4)


def _squat(b: np.ndarray, m: Move, p: Params) -> None:
    """Deep knee bends every two beats, arms reaching forward for balance."""
    d = m.amplitude * _rise(b, 2.0)
    for side in ("r", "l"):
        p[f"{side}_hip_flex"], p[f"{side}_knee"], p[f"{side}_hip_abd"] = 0.9 * d, 1.8 * d, 0.05 + 0.35 * d
        _set_arm(p, side, 0.2 + 0.6 * d, 0.2 + 0.9 * d, 0.3 + 0.7 * d, 0.2 + 1.0 * d)
    p["bow"] = 0.25 * d


def _turn(b: np.ndarray, m: Move, p: Params) -> None:
    """A full spin, arms opening on the way round."""
    u = np.clip((b - BLEND_BEATS / 2) / (m.duration - BLEND_BEATS), 0.0, 1.0)
    # The spin lives only where this move has full weight, and it ends at 0 rather than
    # 2*pi so that the cross-fade into the next move does not unwind it.
    spin = np.where(u >= 1.0, 0.0, m.lead * 2.0 * np.pi * _smootherstep(u))
    p["yaw"] = m.facing + spin
    open_ = np.sin(np.pi * u)
    for side in ("r", "l"):
        _set_arm(p, side, 0.2 + 1.0 * m.amplitude * open_, 0.0, 0.4 + 1.1 * m.amplitude * open_, 0.1)
        p[f"{side}_knee"] = 0.12 * (1.0 - open_)


def _disco(b: np.ndarray, m: Move, p: Params) -> None:
    """Disco point: one arm from up-and-out to down-and-across, the other hand on the hip."""
    lead, other = _sides(m.lead)
    reach = _rise(b, 2.0)
    angle = -0.5 + 2.9 * m.amplitude * reach
    _set_arm(p, lead, angle, 0.15, angle + 0.1, 0.15)
    _set_arm(p, other, 0.55, 0.1, -1.4, 0.2)
    p["lean"] = 0.1 * m.amplitude * (reach - 0.5) * (-m.lead)
    p[f"{lead}_knee"] = 0.25 * reach


def _kick(b: np.ndarray, m: Move, p: Params) -> None:
    """Alternate knee lifts (or side kicks), arms out for balance."""
    a = m.amplitude
    wave = np.sin(np.pi * b)
    lifts = {"r": np.maximum(wave, 0.0) ** 2, "l": np.maximum(-wave, 0.0) ** 2}
    side_kick = m.lead > 0
    for side, lift in lifts.items():
        if side_kick:
            p[f"{side}_hip_abd"], p[f"{side}_knee"] = 0.05 + 0.65 * a * lift, 0.3 * lift
        else:
            p[f"{side}_hip_flex"], p[f"{side}_knee"] = 1.2 * a * lift, 1.6 * a * lift
        _set_arm(p, side, 1.2, 0.1, 1.6, 0.1)
    p["lean"] = 0.08 * wave


def _sway(b: np.ndarray, m: Move, p: Params) -> None:
    """Hands in the air, body swaying from side to side."""
    a = m.amplitude
    sway = np.sin(np.pi * b / 2)
    p["lean"] = 0.16 * a * sway
    p["x_off"] = 0.02 * a * sway
    for side in ("r", "l"):
        _set_arm(p, side, 2.3 + 0.25 * sway, 0.1, 2.7 + 0.3 * np.sin(np.pi * b), 0.1)
        p[f"{side}_knee"] = 0.15 * _rise(b, 1.0)


def _jumping_jack(b: np.ndarray, m: Move, p: Params) -> None:
    """Jumping jacks: arms and legs open and close together with a hop."""
    a = m.amplitude
    open_ = _rise(b, 2.0)
    for side in ("r", "l"):
        lift = 0.2 + 2.4 * a * open_
        _set_arm(p, side, lift, 0.0, lift + 0.2, 0.0)
        p[f"{side}_hip_abd"] = 0.05 + 0.3 * a * open_
    p["bounce"] = 0.04 * a * np.sin(np.pi * b) ** 2


def _walk(b: np.ndarray, m: Move, p: Params, units_per_width: float) -> None:
    """Walk to a new place across the frame, turned towards it, legs and arms swinging."""
    u = (b - BLEND_BEATS / 2) / (m.duration - BLEND_BEATS)
    travel = _smootherstep(u)
    p["x"] = m.x0 + (m.x1 - m.x0) * travel
    direction = 1.0 if m.x1 > m.x0 else -1.0
    p["yaw"] = direction * 1.2 + m.facing
    distance = np.abs(p["x"] - m.x0) * units_per_width  # in standing heights
    phase = 2.0 * np.pi * distance / _STRIDE
    uc = np.clip(u, 0.0, 1.0)
    # Gait amplitude follows the speed (smootherstep's slope peaks at 1.875), so the
    # legs come to rest as the dancer stops.
    pace = np.sqrt(np.clip(30.0 * uc**2 * (1.0 - uc) ** 2 / 1.875, 0.0, 1.0))
    swing = np.sin(phase)
    for side, sign in (("r", 1.0), ("l", -1.0)):
        p[f"{side}_hip_flex"] = 0.5 * pace * sign * swing
        p[f"{side}_knee"] = 0.9 * pace * np.maximum(sign * np.cos(phase), 0.0) ** 2
        _set_arm(p, side, 0.12, -0.45 * pace * sign * swing, 0.1, 0.3 - 0.3 * pace * sign * swing)


_DANCE_MOVES: dict[str, Callable[[np.ndarray, Move, Params], None]] = {
    "groove": _groove,
    "arm_wave": _arm_wave,
    "arms_up": _arms_up,
    "step_side": _step_side,
    "squat": _squat,
    "turn": _turn,
    "disco": _disco,
    "kick": _kick,
    "sway": _sway,
    "jumping_jack": _jumping_jack,
}


def sample_style(rng: np.random.Generator, stage: Stage = STAGES["variety"]) -> Style:
    return Style(
        bpm=float(rng.uniform(*stage.bpm)),
        amplitude=float(rng.uniform(*stage.amplitude)),
        first_beat=float(-rng.uniform(0.0, 4.0)),
        start_x=float(rng.uniform(*stage.start_x)),
    )


def plan_choreography(
    rng: np.random.Generator, style: Style, beats_needed: float, units_per_width: float,
    stage: Stage = STAGES["variety"],
) -> list[Move]:
    """Moves covering beats [style.first_beat - blend, beats_needed + blend], back to back.

    Every few moves the dancer walks to another place, so over a video they use the
    whole width of the frame.
    """
    moves: list[Move] = []
    beat = style.first_beat - BLEND_BEATS
    x = style.start_x
    since_walk = int(rng.integers(0, 3))
    previous = ""
    names = list(_DANCE_MOVES)
    while beat < beats_needed + BLEND_BEATS:
        amplitude = style.amplitude * float(rng.uniform(0.85, 1.1))
        lead = int(rng.choice((-1, 1)))
        if since_walk >= stage.moves_between_walks and rng.random() < stage.walk_chance:
            target = _walk_target(rng, x, stage)
            seconds = abs(target - x) * units_per_width / stage.walk_speed
            duration = float(max(3, math.ceil(seconds * style.bpm / 60.0 + BLEND_BEATS)))
            moves.append(Move("walk", beat, duration, amplitude, lead, float(rng.uniform(-0.2, 0.2)), x, target))
            x, since_walk, previous = target, 0, "walk"
        else:
            name = previous
            while name == previous:
                name = names[int(rng.integers(len(names)))]
            duration = float(rng.choice((3, 4))) if name == "turn" else float(rng.choice((4, 6, 8)))
            facing = float(rng.uniform(-0.3, 0.3))
            if stage.away_chance and rng.random() < stage.away_chance:
                facing += AWAY_FACINGS[int(rng.integers(len(AWAY_FACINGS)))]
            moves.append(Move(name, beat, duration, amplitude, lead, facing, x, x))
            since_walk, previous = since_walk + 1, name
        beat += moves[-1].duration
    return moves


def _walk_target(rng: np.random.Generator, x: float, stage: Stage) -> float:
    lo, hi = stage.x_range
    candidates = [t for t in np.linspace(lo, hi, 25) if abs(t - x) >= stage.min_walk]
    return float(candidates[int(rng.integers(len(candidates)))])


def evaluate_choreography(moves: list[Move], beats: np.ndarray, units_per_width: float) -> Params:
    """The pose parameters at each beat time: every move's angles, cross-faded."""
    total = {name: np.zeros_like(beats) for name in POSE_PARAMS}
    half = BLEND_BEATS / 2
    for move in moves:
        inside = (beats > move.start - half) & (beats < move.end + half)
        if not inside.any():
            continue
        b = beats[inside]
        local = b - move.start
        p: Params = {name: np.full_like(b, _REST.get(name, 0.0)) for name in POSE_PARAMS}
        p["x"] = np.full_like(b, move.x0)
        p["yaw"] = np.full_like(b, move.facing)
        if move.name == "walk":
            _walk(local, move, p, units_per_width)
        else:
            _DANCE_MOVES[move.name](local, move, p)
        weight = _smootherstep((b - (move.start - half)) / BLEND_BEATS) * (
            1.0 - _smootherstep((b - (move.end - half)) / BLEND_BEATS)
        )
        for name in POSE_PARAMS:
            total[name][inside] += weight * p[name]
    return total
