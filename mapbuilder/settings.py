"""Settings of the map builder, read from `ROADSWARM_MATCH_*` environment variables."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mapbuilder.sequences import SequenceOptions

STITCHING = SequenceOptions()


class MatchSettings(BaseSettings):
    """How tracks are stitched into sequences and matched to road segments (Newson & Krumm HMM).

    The defaults were chosen on simulated drives other than the benchmark's (bench/bench_match.py)
    and agree with Valhalla Meili's where the two share a meaning (sigma, search radius, thinning).
    """

    model_config = SettingsConfigDict(env_prefix="ROADSWARM_MATCH_", extra="ignore", frozen=True)

    # Emission: a fix's error (standard deviation), and the weight of its direction of travel
    # (von Mises concentration), which counts only from heading_min_speed_mps on.
    gps_sigma_m: float = Field(default=5.0, gt=0)
    heading_kappa: float = Field(default=2.0, ge=0)
    heading_min_speed_mps: float = Field(default=3.0, ge=0)
    # Candidates: segments within the radius, the nearest max_candidates of them, none much
    # farther than the nearest (d^2 <= nearest^2 + margin^2: emission at most margin^2/2 sigma^2
    # below the best, more than a U-turn costs).
    search_radius_m: float = Field(default=50.0, gt=0)
    max_candidates: int = Field(default=8, ge=1)
    candidate_margin_m: float = Field(default=18.0, gt=0)
    # Fixes closer together than this along the smoothed track share one HMM step.
    thin_spacing_m: float = Field(default=10.0, ge=0)
    # Transition: scale of |route - straight line|; a U-turn costs as much as this mismatch; a
    # route longer than factor x straight line + slack is impossible (the path breaks there).
    transition_beta_m: float = Field(default=3.0, gt=0)
    reverse_penalty_m: float = Field(default=60.0, ge=0)
    max_route_factor: float = Field(default=5.0, gt=1)
    route_slack_m: float = Field(default=100.0, ge=0)
    # HMM steps whose shortest paths are searched together (memory against call overhead).
    chunk_steps: int = Field(default=64, ge=2)
    # Stitching (see SequenceOptions).
    max_gap_s: float = Field(default=STITCHING.max_gap_s, gt=0)
    max_gap_m: float = Field(default=STITCHING.max_gap_m, gt=0)
    max_speed_mps: float = Field(default=STITCHING.max_speed_mps, gt=0)
    jump_margin_m: float = Field(default=STITCHING.jump_margin_m, ge=0)
    max_heading_change_deg: float = Field(default=STITCHING.max_heading_change_deg, gt=0)
    heading_split_speed_mps: float = Field(default=STITCHING.heading_split_speed_mps, ge=0)
    smoothing_s: float = Field(default=STITCHING.smoothing_s, gt=0)
    min_speed_mps: float = Field(default=STITCHING.min_speed_mps, ge=0)

    def sequence_options(self) -> SequenceOptions:
        """The stitching part of these settings."""
        return SequenceOptions(**{f.name: getattr(self, f.name) for f in fields(SequenceOptions)})


class TileSettings(BaseSettings):
    """How imagery tiles are built, read from `ROADSWARM_TILES_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="ROADSWARM_TILES_", extra="ignore", frozen=True)

    # A frame whose fix lies farther than this from its matched segment is not on the road
    # network (the matcher's own search radius is wider): its view would land off the road.
    max_offroad_m: float = Field(default=20.0, gt=0)
    # Tiles per side of the block one task builds (and of the blocks lower zooms are built in).
    block_tiles: int = Field(default=8, ge=1, le=64)
    # Decoded frames shared by a worker's pool processes (see `tiles.shared_frames`): the folder
    # (the worker makes one under /dev/shm when it forks two processes or more) and its bound.
    shared_frames_dir: Path | None = None
    shared_frames_mb: int = Field(default=512, ge=0)
    # A block's lease term: renewed every third of it while the block is built, so a builder
    # that died lets go within one term and the next task or `map tiles build` builds the block.
    block_lease_s: float = Field(default=60.0, ge=3.0)
    # WebP at a fixed quality: 5 kB a tile at 90, 42 dB from the blended pixels (lossless is ten
    # times larger). The encoder is deterministic for fixed settings, so rebuilds are identical.
    webp_quality: int = Field(default=90, ge=0, le=100)
    webp_lossless: bool = False
    # Encoder effort (0-6): 2 is within 1 % of 4's size at half its time.
    webp_method: int = Field(default=2, ge=0, le=6)
    # Refine each sequence's poses by registering its overlapping frames (and its lanes) before
    # its tiles are built; off, the smoothed GNSS track alone places the imagery.
    refine_poses: bool = True
