"""Link profiles: frozen dataclasses are the schema, ``profiles.yaml`` is the data.

A :class:`LinkProfile` holds one :class:`ChannelConfig` per direction (uplink = ground to
robot, downlink = robot to ground) and the loss-of-signal schedule shared by both
directions (a LOS is a property of the space-to-ground path, not of one direction).

Every dataclass validates itself on construction, so a profile built in code, loaded from
YAML or patched with overrides obeys the same ranges. Errors are
:class:`intball_nav.config.ConfigError` whose message names the file and line (when the
value came from YAML), the dotted field and the allowed range, e.g.
``profiles.yaml:31: iss-degraded.uplink.jitter.pareto_alpha: 0.5 is outside the allowed
range 1.01 .. 100``.

Units: seconds, bits per second, bytes; probabilities in [0, 1].
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from intball_nav.config import ConfigError, compose_yaml

PROFILES_PATH = Path(__file__).with_name("profiles.yaml")
"""The packaged named profiles: ideal, iss-nominal, iss-degraded, los-heavy."""

JitterDistribution = Literal["none", "normal", "lognormal", "pareto"]
_DISTRIBUTIONS = ("none", "normal", "lognormal", "pareto")

MAX_DELAY_S = 600.0
MAX_BANDWIDTH_BPS = 100e9


class FieldError(ConfigError):
    """A value is outside its allowed range; ``field`` is the dotted name inside the object."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.detail = message


def _check_range(name: str, value: Any, lo: float, hi: float, unit: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        hint = ""
        if isinstance(value, str) and "e" in value.lower():
            hint = " (YAML 1.1 reads 1.0e6 as text: write 1.0e+6 or 1000000)"
        raise FieldError(name, f"expected a number, got {value!r}{hint}")
    sep = f" {unit}" if unit else ""
    if not math.isfinite(value) or not lo <= value <= hi:
        raise FieldError(name, f"{value:g}{sep} is outside the allowed range {lo:g} .. {hi:g}{sep}")


@dataclass(frozen=True)
class JitterConfig:
    """Extra one-way delay added to the fixed delay, drawn per packet.

    distribution:
      - ``none``: no jitter.
      - ``normal``: zero-mean normal with standard deviation ``std_s`` truncated
        symmetrically at +-``truncate_sigma`` standard deviations (so the mean delay stays
        the configured delay; negative jitter is allowed but the channel requires
        ``delay_s >= truncate_sigma * std_s`` so a delay is never negative).
      - ``lognormal``: positive extra delay with mean ``mean_s`` and standard deviation
        ``std_s`` (a right-skewed queueing-like tail).
      - ``pareto``: Lomax (Pareto II, starting at 0) extra delay with scale
        ``pareto_scale_s`` and shape ``pareto_alpha``: P(extra > x) = (1 + x/scale)^-alpha,
        mean scale / (alpha - 1). A heavy tail of rare multi-second stalls.

    ``cap_s`` clips the extra delay (applies to every distribution; None = no cap).
    """

    distribution: JitterDistribution = "none"
    std_s: float = 0.0
    mean_s: float = 0.0
    truncate_sigma: float = 3.0
    pareto_scale_s: float = 0.0
    pareto_alpha: float = 3.0
    cap_s: float | None = None

    def __post_init__(self) -> None:
        if self.distribution not in _DISTRIBUTIONS:
            raise FieldError("distribution", f"{self.distribution!r} is not one of {list(_DISTRIBUTIONS)}")
        _check_range("std_s", self.std_s, 0.0, MAX_DELAY_S, "s")
        _check_range("mean_s", self.mean_s, 0.0, MAX_DELAY_S, "s")
        _check_range("truncate_sigma", self.truncate_sigma, 0.5, 10.0)
        _check_range("pareto_scale_s", self.pareto_scale_s, 0.0, MAX_DELAY_S, "s")
        _check_range("pareto_alpha", self.pareto_alpha, 1.01, 100.0)
        if self.cap_s is not None:
            _check_range("cap_s", self.cap_s, 0.0, MAX_DELAY_S, "s")
        if self.distribution == "lognormal" and self.std_s > 0 and self.mean_s <= 0:
            raise FieldError("mean_s", "a lognormal jitter with std_s > 0 needs mean_s > 0")

    @property
    def min_s(self) -> float:
        """Smallest possible extra delay (negative only for the normal distribution)."""
        if self.distribution == "normal":
            return -self.truncate_sigma * self.std_s
        return 0.0


@dataclass(frozen=True)
class GilbertElliottConfig:
    """Two-state Markov (bursty) loss, stepped once per packet.

    State good (G) or bad (B). Before each packet the state moves G->B with probability
    ``p_good_to_bad`` and B->G with ``p_bad_to_good``; the packet is then lost with
    ``loss_good`` or ``loss_bad``. Stationary P(B) = p_gb / (p_gb + p_bg); mean loss
    = P(G) loss_good + P(B) loss_bad; with loss_good = 0 and loss_bad = 1 the loss bursts
    are geometric with mean length 1 / p_bg packets.
    """

    p_good_to_bad: float = 0.0
    p_bad_to_good: float = 1.0
    loss_good: float = 0.0
    loss_bad: float = 0.0

    def __post_init__(self) -> None:
        _check_range("p_good_to_bad", self.p_good_to_bad, 0.0, 1.0)
        _check_range("p_bad_to_good", self.p_bad_to_good, 0.0, 1.0)
        _check_range("loss_good", self.loss_good, 0.0, 1.0)
        _check_range("loss_bad", self.loss_bad, 0.0, 1.0)
        if self.p_good_to_bad > 0 and self.p_bad_to_good == 0:
            raise FieldError("p_bad_to_good", "must be > 0 when p_good_to_bad > 0 (else the link dies)")

    @property
    def stationary_bad(self) -> float:
        """Long-run fraction of packets seen in the bad state."""
        total = self.p_good_to_bad + self.p_bad_to_good
        return 0.0 if total == 0 else self.p_good_to_bad / total

    @property
    def mean_loss(self) -> float:
        """Long-run loss probability due to this model alone."""
        bad = self.stationary_bad
        return (1.0 - bad) * self.loss_good + bad * self.loss_bad


@dataclass(frozen=True)
class PeriodicLos:
    """One LOS window per ``period_s``: [phase_s + k period_s, phase_s + k period_s + duration_s)."""

    period_s: float
    duration_s: float
    phase_s: float = 0.0

    def __post_init__(self) -> None:
        _check_range("period_s", self.period_s, 1.0, 1e7, "s")
        _check_range("duration_s", self.duration_s, 0.0, self.period_s, "s")
        _check_range("phase_s", self.phase_s, 0.0, 1e9, "s")

    def window(self, k: int) -> tuple[float, float]:
        """The k-th window [start, end), s since epoch (k >= 0)."""
        start = self.phase_s + k * self.period_s
        return start, start + self.duration_s


@dataclass(frozen=True)
class LosSchedule:
    """Loss-of-signal windows, in seconds since the link epoch (emulator start).

    ``windows`` are explicit [start, end) pairs; ``periodic`` are repeating windows (several
    per orbit are expressed as several entries with the orbit period and different phases).
    """

    windows: tuple[tuple[float, float], ...] = ()
    periodic: tuple[PeriodicLos, ...] = ()

    def __post_init__(self) -> None:
        # Accept lists from YAML / overrides; store tuples (hashable, immutable).
        windows = tuple(tuple(w) for w in self.windows)
        object.__setattr__(self, "windows", windows)
        object.__setattr__(self, "periodic", tuple(self.periodic))
        for i, window in enumerate(windows):
            if len(window) != 2:
                raise FieldError(f"windows[{i}]", f"expected [start_s, end_s], got {list(window)}")
            _check_range(f"windows[{i}][0]", window[0], 0.0, 1e9, "s")
            _check_range(f"windows[{i}][1]", window[1], window[0], 1e9, "s")
        for i, item in enumerate(self.periodic):
            if not isinstance(item, PeriodicLos):
                raise FieldError(f"periodic[{i}]", f"expected a PeriodicLos, got {item!r}")

    def in_los(self, t: float) -> bool:
        """True when ``t`` (s since epoch) lies inside a LOS window."""
        return any(start <= t < end for start, end in self._windows_at(t))

    def next_los_start(self, t: float) -> float:
        """Start of the first LOS window that begins at or after ``t`` (inf if none)."""
        best = math.inf
        for start, end in self.windows:
            if start >= t and end > start:
                best = min(best, start)
        for p in self.periodic:
            if p.duration_s <= 0:
                continue
            k = max(0, math.ceil((t - p.phase_s) / p.period_s))
            while k > 0 and p.window(k - 1)[0] >= t:  # float rounding: use the same expression
                k -= 1
            while p.window(k)[0] < t:
                k += 1
            best = min(best, p.window(k)[0])
        return best

    def los_end(self, t: float) -> float:
        """End of the LOS that contains ``t`` (merging back-to-back windows); ``t`` if AOS."""
        end = t
        for _ in range(1000):  # windows can chain; bounded for safety
            ends = [stop for start, stop in self._windows_at(end) if start <= end < stop]
            if not ends:
                return end
            end = max(ends)
        return end

    def _windows_at(self, t: float) -> list[tuple[float, float]]:
        """Explicit windows and the periodic windows around ``t`` ([start, end) pairs)."""
        out = [w for w in self.windows if w[1] > w[0]]
        for p in self.periodic:
            if p.duration_s > 0:
                k = math.floor((t - p.phase_s) / p.period_s)
                out.extend(p.window(j) for j in (k - 1, k, k + 1) if j >= 0)
        return out

    def overlaps(self, t0: float, t1: float) -> bool:
        """True when [t0, t1] intersects a LOS window."""
        return self.in_los(t0) or self.next_los_start(t0) <= t1


@dataclass(frozen=True)
class ChannelConfig:
    """One direction of the link.

    delay_s: fixed one-way delay (propagation + processing), s.
    jitter: extra per-packet delay (see :class:`JitterConfig`).
    reorder: if False (default) packets are delivered in send order: a packet never
      overtakes an earlier one (it waits behind a late one, as on a serial link).
    random_loss: independent per-packet loss probability.
    gilbert_elliott: bursty loss (see :class:`GilbertElliottConfig`); combined with
      random_loss (a packet is lost if either model loses it).
    duplicate: probability that a delivered packet is delivered twice (second copy a
      little later); 0 on a real space link, useful to test at-most-once execution.
    bandwidth_bps: serialization rate, bit/s (None = unlimited).
    queue_bytes: transmit queue size; a packet that does not fit is tail-dropped.
    los: loss-of-signal schedule (normally set at profile level for both directions).
    """

    delay_s: float = 0.0
    jitter: JitterConfig = field(default_factory=JitterConfig)
    reorder: bool = False
    random_loss: float = 0.0
    gilbert_elliott: GilbertElliottConfig = field(default_factory=GilbertElliottConfig)
    duplicate: float = 0.0
    bandwidth_bps: float | None = None
    queue_bytes: int = 1_000_000
    los: LosSchedule = field(default_factory=LosSchedule)

    def __post_init__(self) -> None:
        _check_range("delay_s", self.delay_s, 0.0, MAX_DELAY_S, "s")
        _check_range("random_loss", self.random_loss, 0.0, 1.0)
        _check_range("duplicate", self.duplicate, 0.0, 1.0)
        if not isinstance(self.reorder, bool):
            raise FieldError("reorder", f"expected true or false, got {self.reorder!r}")
        if self.bandwidth_bps is not None:
            _check_range("bandwidth_bps", self.bandwidth_bps, 1.0, MAX_BANDWIDTH_BPS, "bit/s")
        _check_range("queue_bytes", self.queue_bytes, 1, 1e10, "B")
        object.__setattr__(self, "queue_bytes", int(self.queue_bytes))
        if self.delay_s + self.jitter.min_s < 0:
            raise FieldError(
                "jitter.std_s",
                f"{self.jitter.std_s:g} s is outside the allowed range 0 .. "
                f"{self.delay_s / self.jitter.truncate_sigma:g} s "
                f"(delay_s / truncate_sigma, so that the delay is never negative)",
            )


@dataclass(frozen=True)
class LinkProfile:
    """A named pair of channels plus the LOS schedule shared by both directions."""

    name: str
    uplink: ChannelConfig = field(default_factory=ChannelConfig)
    downlink: ChannelConfig = field(default_factory=ChannelConfig)
    los: LosSchedule = field(default_factory=LosSchedule)
    description: str = ""

    def __post_init__(self) -> None:
        # The profile LOS applies to both directions.
        for direction in ("uplink", "downlink"):
            own = getattr(self, direction).los
            if own != LosSchedule() and own != self.los:
                raise FieldError(
                    f"{direction}.los", "set los at profile level (it applies to both directions)"
                )
        object.__setattr__(self, "uplink", dataclasses.replace(self.uplink, los=self.los))
        object.__setattr__(self, "downlink", dataclasses.replace(self.downlink, los=self.los))


# ---------------------------------------------------------------------------------------
# Loading


def available_profiles(path: str | Path = PROFILES_PATH) -> list[str]:
    """Names of the profiles in a profiles file (default: the packaged one)."""
    data, _ = _read_yaml(Path(path))
    return list(data.get("profiles", {}))


def load_profile(
    name_or_path: str | Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    profiles_path: str | Path | None = None,
) -> LinkProfile:
    """Load a named profile (from ``profiles.yaml``) or a YAML file holding one profile.

    name_or_path: ``"iss-nominal"`` or a path to a ``.yaml`` file (either a single profile
      mapping or a file with a ``profiles:`` mapping, in which case the stem selects it).
    overrides: nested or dotted keys applied on top, e.g.
      ``{"uplink.delay_s": 1.0, "los": {"windows": [[10, 20]]}}``.
    """
    text = str(name_or_path)
    is_path = text.endswith((".yaml", ".yml")) or Path(text).is_file()
    path = Path(text) if is_path else Path(profiles_path or PROFILES_PATH)
    data, lines = _read_yaml(path)
    if is_path and "profiles" not in data:
        name, raw, prefix = path.stem, data, ""
    else:
        profiles = data.get("profiles")
        if not isinstance(profiles, dict):
            raise ConfigError(f"{path.name}:1: profiles: expected a mapping of named profiles")
        name = path.stem if is_path else text
        if name not in profiles:
            raise ConfigError(f"{path.name}: unknown link profile {name!r} (available: {list(profiles)})")
        raw, prefix = profiles[name], f"profiles.{name}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{path.name}:{lines.get(prefix, 1)}: {name}: expected a mapping")
    patch = _expand_dotted(overrides or {})
    merged = _merge(raw, patch)
    overridden = set(_leaf_paths(patch))

    def locate(field_path: str) -> str:
        inner = field_path.split(".", 1)[1] if "." in field_path else ""
        if any(inner == p or inner.startswith((p + ".", p + "[")) for p in overridden):
            return "overrides"
        return _line(path, lines, prefix, field_path)

    return _build(LinkProfile, {"name": name, **merged}, name, locate)


def _leaf_paths(tree: Mapping, prefix: str = "") -> list[str]:
    out = []
    for key, value in tree.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        out.extend(_leaf_paths(value, dotted) if isinstance(value, Mapping) and value else [dotted])
    return out


def _line(path: Path, lines: dict[str, int], prefix: str, field_path: str) -> str:
    """``file:line`` of the deepest YAML key that matches ``field_path`` (``name.a.b``)."""
    parts = field_path.split(".")[1:]  # drop the profile name
    while parts:
        key = ".".join(p for p in [prefix, *parts] if p)
        if key in lines:
            return f"{path.name}:{lines[key]}"
        parts = parts[:-1]
    return f"{path.name}:{lines.get(prefix, 1)}"


def _read_yaml(path: Path) -> tuple[dict, dict[str, int]]:
    """Parse YAML into plain python plus ``{dotted.key: line}`` for every mapping key."""
    root = compose_yaml(path)
    lines: dict[str, int] = {}
    constructor = yaml.constructor.SafeConstructor()

    def walk(node: yaml.Node, key: str) -> Any:
        if isinstance(node, yaml.MappingNode):
            out = {}
            for k_node, v_node in node.value:
                k = str(k_node.value)
                child = f"{key}.{k}" if key else k
                if k in out:
                    raise ConfigError(f"{path.name}:{k_node.start_mark.line + 1}: {child}: duplicate key")
                lines[child] = k_node.start_mark.line + 1
                out[k] = walk(v_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [walk(item, key) for item in node.value]
        return constructor.construct_object(node, deep=True)

    data = walk(root, "") if root is not None else {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path.name}:1: the file must hold a mapping")
    return data, lines


def _expand_dotted(overrides: Mapping[str, Any]) -> dict:
    out: dict = {}
    for key, value in overrides.items():
        parts = str(key).split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _expand_dotted(value) if isinstance(value, Mapping) else value
    return out


def _merge(base: Mapping, patch: Mapping) -> dict:
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _build(cls: type, data: Any, where: str, locate) -> Any:
    """Build dataclass ``cls`` from plain data; errors name ``where.field`` and its line."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{locate(where)}: {where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            dotted = f"{where}.{key}"
            raise ConfigError(f"{locate(dotted)}: {dotted}: unknown key (allowed: {', '.join(names)})")
        hint = hints[key]
        dotted = f"{where}.{key}"
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            value = _build(hint, value, dotted, locate)
        elif key == "periodic":
            if not isinstance(value, list):
                raise ConfigError(f"{locate(dotted)}: {dotted}: expected a list of periodic windows")
            value = tuple(_build(PeriodicLos, v, f"{dotted}[{i}]", locate) for i, v in enumerate(value))
        elif key == "windows" and not isinstance(value, list | tuple):
            raise ConfigError(f"{locate(dotted)}: {dotted}: expected a list of [start_s, end_s]")
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except FieldError as exc:
        dotted = f"{where}.{exc.field}"
        raise ConfigError(f"{locate(dotted)}: {dotted}: {exc.detail}") from None
    except TypeError as exc:  # e.g. missing required field
        raise ConfigError(f"{locate(where)}: {where}: {exc}") from None
