"""Poses of one or more sequences as a least-squares pose graph: registration, GNSS with a
drifting bias, heading, distance driven and lane lines.

Unknowns per frame: position x, y (local metres), heading (radians clockwise from grid north)
and the GNSS error bx, by. Receiver error drifts (multipath, atmosphere): it is modelled as a
first-order Gauss-Markov state, so fixes a second apart are not independent evidence and a drive
cannot average its bias away. Residuals, each divided by its standard deviation:

- registration: frame j's position and heading seen from frame i (right, forward, turn);
- GNSS: position + bias = fix; the bias follows b[k+1] = phi b[k] + noise, phi = exp(-dt / tau);
- heading: a weak prior from the GNSS course, and no sideslip (a car moves along its heading:
  the step between two frames has no sideways part in their mean heading);
- travel: the step along that mean heading is the distance driven between the frames (the
  chord of the arc; a step that holds a turn is known less well, since where within it the car
  turned is unknown): the device's odometry where it sent one (Doppler speed integrated over
  every fix, so a step is known across a stop too, less well the longer it took), else the
  mean of the two keyframes' Doppler speeds (good to about 0.1 m/s even where positions wander;
  unknown across a stop);
- lanes: the signed distance to the lane line the map matcher implies, where one is known;
- anchors: a frame's pose seen from a frame of another sequence already in the map, whose
  pose is held fixed (registration, weighted as one).

Frames of several sequences (drives) may be solved together: bias, sideslip and travel link only
frames of one sequence, registration edges may join any two frames.

Solved by Gauss-Newton on the sparse normal equations with a soft-L1 reweighting, so a
registration fooled by a passing truck is outvoted rather than followed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import coo_matrix, csr_matrix, identity
from scipy.sparse.linalg import spsolve

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
# One block of residuals: their values, and per unknown they depend on its columns and derivatives.
_Block = tuple[FloatArray, list[tuple[IntArray, FloatArray]]]
MAX_ITERATIONS = 20
CONVERGED_M = 1e-4


@dataclass(frozen=True)
class GraphSettings:
    """Standard deviations of every kind of evidence, and the GNSS error's correlation time."""

    odometry_sigma_m: float = 0.05
    turn_sigma_deg: float = 0.3
    gnss_white_sigma_m: float = 0.5
    gnss_bias_sigma_m: float = 3.0
    gnss_correlation_s: float = 30.0
    heading_sigma_deg: float = 3.0
    sideslip_sigma_m: float = 0.05
    # Distance driven between frames, integrated from Doppler speed (far better than position,
    # about 0.1 m/s): an error of a few cm plus a share of the distance.
    travel_floor_m: float = 0.05
    travel_share: float = 0.02
    # Speed between fixes is interpolated: across a stop or a long gap it is known less well.
    travel_sigma_mps: float = 0.1
    # The device's odometry between frames: the Doppler speed integrated over every video frame
    # (white noise of about 0.1 m/s per fix, a scale error under 1 %), centimetres as sent.
    # Speed is interpolated between 1 Hz fixes, least right while braking and pulling away, and
    # a crawl below 0.8 m/s counts as standing: the time term widens the steps that take long.
    odometer_floor_m: float = 0.03
    odometer_share: float = 0.01
    odometer_sigma_mps: float = 0.1
    lane_sigma_m: float = 0.3
    # Scales the travel and sideslip uncertainty of a step that holds a turn (`_corner_spread`);
    # 0 treats every turn as a steady arc, which across a junction's corner it is not.
    turn_spread: float = 1.0
    # Residuals beyond this many standard deviations count linearly (soft L1), not squared.
    robust_scale: float = 3.0


@dataclass(frozen=True)
class Edges:
    """Registrations: frame j's pose in frame i's camera frame (right, forward metres; turn in
    radians clockwise)."""

    i: IntArray
    j: IntArray
    right_m: FloatArray
    forward_m: FloatArray
    turn_rad: FloatArray


@dataclass(frozen=True)
class Lanes:
    """Lane-line constraints: frame k lies on the line through (x, y) with unit normal (nx, ny)."""

    k: IntArray
    x: FloatArray
    y: FloatArray
    nx: FloatArray
    ny: FloatArray


@dataclass(frozen=True)
class Anchored:
    """Registrations with fixed poses: frame k seen from the pose (x, y, heading radians) of a
    frame that is not solved for (right, forward metres; turn radians clockwise)."""

    k: IntArray
    x: FloatArray
    y: FloatArray
    heading_rad: FloatArray
    right_m: FloatArray
    forward_m: FloatArray
    turn_rad: FloatArray


_NONE = np.zeros(0, np.float64)
NO_ANCHORS = Anchored(np.zeros(0, np.int64), _NONE, _NONE, _NONE, _NONE, _NONE, _NONE)


@dataclass(frozen=True)
class Observed:
    """What the receiver said per frame: local metres, heading (radians), time, accuracy scale."""

    x: FloatArray
    y: FloatArray
    heading_rad: FloatArray
    t_s: FloatArray
    sigma_scale: FloatArray  # HDOP where known, else 1
    step_m: FloatArray  # distance driven from the previous frame (Doppler or odometer), or NaN
    # Which sequence (drive) each frame belongs to: GNSS bias, sideslip and travel link only
    # frames of one sequence; None: all one sequence.
    sequence: IntArray | None = None
    # Whether `step_m` is the device's odometry (weighted by the odometer_* settings) rather
    # than from the keyframes' speeds (travel_*); None: none is.
    from_odometer: NDArray[np.bool_] | None = None


def wrap(angle: FloatArray) -> FloatArray:
    """Angles into (-pi, pi]."""
    return np.asarray(np.pi - np.mod(np.pi - angle, 2 * np.pi))


class _Graph:
    """Residuals and their sparse Jacobian over the packed unknowns (x, y, heading, bx, by)."""

    def __init__(
        self, obs: Observed, edges: Edges, lanes: Lanes, anchored: Anchored, s: GraphSettings
    ) -> None:
        self.obs, self.edges, self.lanes, self.anchored, self.s = obs, edges, lanes, anchored, s
        self.n = obs.x.size
        labels = np.zeros(self.n, np.int64) if obs.sequence is None else obs.sequence
        self.within = labels[1:] == labels[:-1]
        # Between sequences the bias starts afresh: phi 0 makes the step residual a prior.
        self.phi = np.where(self.within, np.exp(-np.diff(obs.t_s) / s.gnss_correlation_s), 0.0)
        self.bias_step_sigma = s.gnss_bias_sigma_m * np.sqrt(np.maximum(1 - self.phi**2, 1e-6))

    def unpack(self, v: FloatArray) -> tuple[FloatArray, ...]:
        n = self.n
        return v[:n], v[n : 2 * n], v[2 * n : 3 * n], v[3 * n : 4 * n], v[4 * n :]

    def linearise(self, v: FloatArray) -> tuple[FloatArray, csr_matrix]:
        """Residuals at `v` and their Jacobian, block by block in one order."""
        blocks = [
            *self._odometry(v),
            *self._gnss(v),
            *self._heading(v),
            *self._motion(v),
            self._lanes(v),
            *self._anchors(v),
        ]
        residuals, rows, cols, values, start = [], [], [], [], 0
        for r, entries in blocks:
            residuals.append(r)
            for col, value in entries:
                rows.append(start + np.arange(r.size))
                cols.append(col)
                values.append(np.broadcast_to(value, r.shape))
            start += r.size
        jac = coo_matrix(
            (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))),
            shape=(start, 5 * self.n),
        )
        return np.concatenate(residuals), jac.tocsr()

    def _odometry(self, v: FloatArray) -> list[_Block]:
        x, y, h, _, _ = self.unpack(v)
        e, n, sigma = self.edges, self.n, self.s.odometry_sigma_m
        dx, dy = x[e.j] - x[e.i], y[e.j] - y[e.i]
        sin_i, cos_i = np.sin(h[e.i]), np.cos(h[e.i])
        right = dx * cos_i - dy * sin_i
        forward = dx * sin_i + dy * cos_i
        xi, xj, yi, yj, hi, hj = e.i, e.j, e.i + n, e.j + n, e.i + 2 * n, e.j + 2 * n
        turn_sigma = np.radians(self.s.turn_sigma_deg)
        return [
            (
                (right - e.right_m) / sigma,
                [
                    (xj, cos_i / sigma),
                    (xi, -cos_i / sigma),
                    (yj, -sin_i / sigma),
                    (yi, sin_i / sigma),
                    (hi, -forward / sigma),
                ],
            ),
            (
                (forward - e.forward_m) / sigma,
                [
                    (xj, sin_i / sigma),
                    (xi, -sin_i / sigma),
                    (yj, cos_i / sigma),
                    (yi, -cos_i / sigma),
                    (hi, right / sigma),
                ],
            ),
            (
                wrap(h[e.j] - h[e.i] - e.turn_rad) / turn_sigma,
                [(hj, 1 / turn_sigma), (hi, -1 / turn_sigma)],
            ),
        ]

    def _gnss(self, v: FloatArray) -> list[_Block]:
        x, y, _, bx, by = self.unpack(v)
        o, n, s = self.obs, self.n, self.s
        ar = np.arange(n)
        white = s.gnss_white_sigma_m * o.sigma_scale
        step = self.bias_step_sigma
        blocks: list[_Block] = [
            ((x + bx - o.x) / white, [(ar, 1 / white), (ar + 3 * n, 1 / white)]),
            ((y + by - o.y) / white, [(ar + n, 1 / white), (ar + 4 * n, 1 / white)]),
        ]
        for bias, base in ((bx, 3 * n), (by, 4 * n)):
            blocks.append(
                (
                    (bias[1:] - self.phi * bias[:-1]) / step,
                    [(ar[1:] + base, 1 / step), (ar[:-1] + base, -self.phi / step)],
                )
            )
            first = np.array([base])
            prior = np.array([1 / s.gnss_bias_sigma_m])
            blocks.append((bias[:1] / s.gnss_bias_sigma_m, [(first, prior)]))
        return blocks

    def _heading(self, v: FloatArray) -> list[_Block]:
        h = self.unpack(v)[2]
        n, sigma = self.n, np.radians(self.s.heading_sigma_deg)
        return [(wrap(h - self.obs.heading_rad) / sigma, [(np.arange(n) + 2 * n, 1 / sigma)])]

    def _motion(self, v: FloatArray) -> list[_Block]:
        """No sideslip, and the distance driven, for each step between frames of one sequence."""
        x, y, h, _, _ = self.unpack(v)
        n, s = self.n, self.s
        k = np.flatnonzero(self.within)
        step_x, step_y = x[k + 1] - x[k], y[k + 1] - y[k]
        half_turn = wrap(h[k + 1] - h[k]) / 2
        mid = h[k] + half_turn
        cos_m, sin_m = np.cos(mid), np.sin(mid)
        lateral = step_x * cos_m - step_y * sin_m
        along = step_x * sin_m + step_y * cos_m
        travelled = self.obs.step_m[k + 1]
        # Driven along an arc, the chord is shorter than the path by sinc(turn / 2); its
        # derivative (for the Jacobian) is travelled * d(sin u / u)/du / 2, u the half turn.
        chord = travelled * np.sinc(half_turn / np.pi)
        u = np.where(np.abs(half_turn) < 1e-6, 1e-6, half_turn)
        bend = travelled * (u * np.cos(u) - np.sin(u)) / u**2 / 2
        known = np.isfinite(travelled)
        corner_along, corner_across = self._corner_spread(k, travelled)
        t_sigma = np.where(
            known, np.hypot(self._travel_sigma(k, np.abs(travelled)), corner_along), np.inf
        )
        t_residual = np.where(known, along - chord, 0.0) / t_sigma
        slip = np.hypot(s.sideslip_sigma_m, corner_across)
        return [
            (
                t_residual,
                [
                    (k + 1, sin_m / t_sigma),
                    (k, -sin_m / t_sigma),
                    (k + 1 + n, cos_m / t_sigma),
                    (k + n, -cos_m / t_sigma),
                    (k + 2 * n, (lateral / 2 + np.where(known, bend, 0.0)) / t_sigma),
                    (k + 1 + 2 * n, (lateral / 2 - np.where(known, bend, 0.0)) / t_sigma),
                ],
            ),
            (
                lateral / slip,
                [
                    (k + 1, cos_m / slip),
                    (k, -cos_m / slip),
                    (k + 1 + n, -sin_m / slip),
                    (k + n, sin_m / slip),
                    (k + 2 * n, -along / 2 / slip),
                    (k + 1 + 2 * n, -along / 2 / slip),
                ],
            ),
        ]

    def _corner_spread(self, k: IntArray, travelled: FloatArray) -> tuple[FloatArray, FloatArray]:
        """How much less well a step that holds a turn is known, along and across its mean
        heading. The chord model takes the arc of a steady turn; a car may turn anywhere
        within the step (in one corner at a junction), which shortens the chord from
        d sinc(turn / 2) towards d cos(turn / 2) and puts it up to d sin(turn / 2) to the side
        (the corner equally likely anywhere: a standard deviation of that over root 3). The
        turn is the receiver's change of course; d the distance driven, else the fixes' step."""
        o = self.obs
        fixes_step = np.hypot(o.x[k + 1] - o.x[k], o.y[k + 1] - o.y[k])
        scale = self.s.turn_spread * np.where(np.isfinite(travelled), np.abs(travelled), fixes_step)
        half = np.abs(wrap(o.heading_rad[k + 1] - o.heading_rad[k])) / 2
        return scale * (np.sinc(half / np.pi) - np.cos(half)) / 2, scale * np.sin(half) / np.sqrt(3)

    def _travel_sigma(self, k: IntArray, distance: FloatArray) -> FloatArray:
        """Standard deviation of the distance driven from frame k to k + 1."""
        s, dt = self.s, self.obs.t_s[k + 1] - self.obs.t_s[k]
        speeds = s.travel_floor_m + s.travel_share * distance + s.travel_sigma_mps * dt
        if self.obs.from_odometer is None:
            return speeds
        odometer = s.odometer_floor_m + s.odometer_share * distance + s.odometer_sigma_mps * dt
        return np.where(self.obs.from_odometer[k + 1], odometer, speeds)

    def _lanes(self, v: FloatArray) -> _Block:
        x, y, _, _, _ = self.unpack(v)
        lane, n, sigma = self.lanes, self.n, self.s.lane_sigma_m
        distance = lane.nx * (x[lane.k] - lane.x) + lane.ny * (y[lane.k] - lane.y)
        return distance / sigma, [(lane.k, lane.nx / sigma), (lane.k + n, lane.ny / sigma)]

    def _anchors(self, v: FloatArray) -> list[_Block]:
        """Frame k's pose seen from a fixed pose, as a registration: only k moves."""
        x, y, h, _, _ = self.unpack(v)
        a, n, sigma = self.anchored, self.n, self.s.odometry_sigma_m
        dx, dy = x[a.k] - a.x, y[a.k] - a.y
        sin_a, cos_a = np.sin(a.heading_rad), np.cos(a.heading_rad)
        turn_sigma = np.radians(self.s.turn_sigma_deg)
        return [
            (
                (dx * cos_a - dy * sin_a - a.right_m) / sigma,
                [(a.k, cos_a / sigma), (a.k + n, -sin_a / sigma)],
            ),
            (
                (dx * sin_a + dy * cos_a - a.forward_m) / sigma,
                [(a.k, sin_a / sigma), (a.k + n, cos_a / sigma)],
            ),
            (
                wrap(h[a.k] - a.heading_rad - a.turn_rad) / turn_sigma,
                [(a.k + 2 * n, np.full(a.k.size, 1 / turn_sigma))],
            ),
        ]


def solve(
    obs: Observed,
    edges: Edges,
    lanes: Lanes,
    settings: GraphSettings,
    anchored: Anchored = NO_ANCHORS,
) -> FloatArray:
    """Refined (x, y, heading) per frame, as an (n, 3) array.

    Gauss-Newton with iteratively reweighted residuals (soft L1 beyond `robust_scale`): the
    problem is nearly linear, so a few sparse solves converge."""
    graph = _Graph(obs, edges, lanes, anchored, settings)
    n = obs.x.size
    v = np.concatenate([obs.x, obs.y, obs.heading_rad, np.zeros(2 * n)])
    damping = identity(5 * n, format="csr") * 1e-9
    for _ in range(MAX_ITERATIONS):
        residuals, jac = graph.linearise(v)
        weights = 1 / np.sqrt(1 + (residuals / settings.robust_scale) ** 2)
        weighted = jac.multiply(weights[:, np.newaxis]).tocsr()
        step = spsolve((jac.T @ weighted + damping).tocsc(), -(weighted.T @ residuals))
        v = v + step
        if float(np.max(np.abs(step))) < CONVERGED_M:
            break
    x, y, h, _, _ = graph.unpack(v)
    return np.stack([x, y, np.mod(h, 2 * np.pi)], axis=1)
