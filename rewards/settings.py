"""Every number that decides who earns what: one versioned parameter object, hashed into each epoch.

`RewardParams` is what an epoch is computed with; its canonical JSON and SHA-256 are written into
the epoch's ledger record, so anyone can recompute the epoch with exactly the same numbers.
`RewardsSettings` reads them (and where the operator key and charts live) from `ROADSWARM_REWARDS_*`
environment variables; dicts and lists are given as JSON, e.g.
`ROADSWARM_REWARDS_ROAD_CLASS_FACTORS='{"motorway": 0.5}'`.
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rewards.canonical import canonical_json

PARAMS_FORMAT = 1
BASE_UNITS_PER_TOKEN = 10**9  # amounts are integers with 9 decimals
DEFAULT_REGION = "default"
# OSM classes; `_link` roads take their road's factor. Busy roads change faster than service roads.
ROAD_CLASS_FACTORS: dict[str, float] = {
    "motorway": 1.0,
    "trunk": 1.0,
    "primary": 1.0,
    "secondary": 1.0,
    "tertiary": 1.0,
    "unclassified": 0.8,
    "residential": 0.8,
    "living_street": 0.5,
    "road": 0.8,
    "service": 0.3,
}


class Region(BaseModel):
    """A named box whose segments get a multiplier and whose share of the pool may be capped."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64)
    bbox_lonlat: tuple[float, float, float, float]  # west, south, east, north
    multiplier: float = Field(default=1.0, ge=0)
    cap_bp: int = Field(default=10_000, ge=0, le=10_000)


class Bounty(BaseModel):
    """An extra weight on one segment for one epoch (1.0 doubles what its bins earn)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epoch: date
    segment_id: str = Field(min_length=1, max_length=32)
    extra_factor: float = Field(gt=0)


class RewardParamFields(BaseModel):
    """The parameters themselves (shared by the frozen object and the environment reader)."""

    params_format: int = PARAMS_FORMAT
    epoch_length_days: Literal[7] = 7  # epochs are ISO weeks keyed by their Monday, UTC
    grace_period_h: float = Field(default=48.0, ge=0)
    bin_length_m: float = Field(default=20.0, gt=0)
    freshness_tau_days: float = Field(default=7.0, gt=0)
    first_capture_bonus: float = Field(default=0.5, ge=0)  # share of a new bin's weight
    rank_weights: tuple[float, ...] = (1.0, 0.75, 0.25)  # later ranks earn 0
    # Quality = expected position error: the match distance plus HDOP x this user range error;
    # errors within one step rank equal (then the earlier capture wins).
    hdop_error_m: float = Field(default=5.0, ge=0)
    missing_hdop: float = Field(default=2.0, ge=0)
    quality_step_m: float = Field(default=1.0, gt=0)
    road_class_factors: dict[str, float] = Field(default_factory=lambda: dict(ROAD_CLASS_FACTORS))
    default_road_class_factor: float = Field(default=0.8, ge=0)
    regions: tuple[Region, ...] = ()
    bounties: tuple[Bounty, ...] = ()
    pool_base_units: int = Field(default=100_000 * BASE_UNITS_PER_TOKEN, ge=0)
    device_cap_bp: int = Field(default=10_000, ge=0, le=10_000)
    max_fleet_split_bp: int = Field(default=10_000, ge=0, le=10_000)

    @model_validator(mode="after")
    def _consistent(self) -> RewardParamFields:
        """Rank weights must not grow (or a redundant capture could raise others' shares)."""
        weights = self.rank_weights
        if any(w < 0 or w > 1 for w in weights) or list(weights) != sorted(weights, reverse=True):
            msg = f"rank_weights {weights} must lie in [0, 1] and never increase with rank"
            raise ValueError(msg)
        names = [r.name for r in self.regions]
        if DEFAULT_REGION in names or len(set(names)) != len(names):
            msg = f"region names {names} must be unique and not {DEFAULT_REGION!r}"
            raise ValueError(msg)
        if any(f < 0 for f in self.road_class_factors.values()):
            msg = "road_class_factors must not be negative"
            raise ValueError(msg)
        return self


class RewardParams(RewardParamFields):
    """The frozen parameters one epoch is computed with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def document(self) -> dict[str, Any]:
        """The parameters as a JSON document with every float written as its shortest repr."""
        document: dict[str, Any] = _floats_as_text(self.model_dump(mode="json"))
        return document

    def canonical(self) -> bytes:
        """The exact bytes that are hashed."""
        return canonical_json(self.document())

    def sha256(self) -> str:
        """The hash recorded with every epoch computed with these parameters."""
        return hashlib.sha256(self.canonical()).hexdigest()

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> RewardParams:
        """Parameters back from a ledger record (floats were written as text)."""
        return cls.model_validate(document)

    def region_names(self) -> list[str]:
        """Region index 0 is the default region, then the configured ones in order."""
        return [DEFAULT_REGION, *(r.name for r in self.regions)]

    def region_caps_bp(self) -> list[int]:
        """Each region's cap, in the order of `region_names` (the default one is uncapped)."""
        return [10_000, *(r.cap_bp for r in self.regions)]

    def class_factor(self, road_class: str) -> float:
        """The factor of a road class; links count as their road."""
        factors = self.road_class_factors
        return factors.get(
            road_class,
            factors.get(road_class.removesuffix("_link"), self.default_road_class_factor),
        )


def _floats_as_text(value: Any) -> Any:
    """Floats become their repr (exact and the same in every language with shortest round-trip)."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {key: _floats_as_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_floats_as_text(item) for item in value]
    return value


def default_operator_key_dir() -> Path:
    """Where `roadswarm rewards operator-key init` puts the key unless told otherwise."""
    return Path.home() / ".config" / "roadswarm" / "operator"


def default_output_dir() -> Path:
    """Where each closed epoch's charts are written."""
    return Path.home() / ".local" / "share" / "roadswarm" / "rewards"


class RewardsSettings(BaseSettings, RewardParamFields):
    """The operator's reward settings (`ROADSWARM_REWARDS_*`)."""

    model_config = SettingsConfigDict(env_prefix="ROADSWARM_REWARDS_", extra="ignore")

    operator_key_dir: Path = Field(default_factory=default_operator_key_dir)
    output_dir: Path = Field(default_factory=default_output_dir)
    # Hex ed25519 key `ledger verify` trusts for epoch signatures (default: the key file's).
    operator_public_key: str = ""

    def params(self) -> RewardParams:
        """The frozen parameter object of these settings."""
        return RewardParams.model_validate(
            self.model_dump(include=set(RewardParamFields.model_fields))
        )
