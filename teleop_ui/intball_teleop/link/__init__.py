"""Space-to-ground link emulator and the command protocol that survives it."""

from .channel import Channel, ChannelStats, Delivery, Fate
from .config import (
    ChannelConfig,
    GilbertElliottConfig,
    JitterConfig,
    LinkProfile,
    LosSchedule,
    PeriodicLos,
    available_profiles,
    load_profile,
)
from .keys import load_station_keys
from .protocol import (
    AckState,
    Command,
    CommandGate,
    CommandQueue,
    GateConfig,
    Outcome,
    ProtocolError,
    QueueConfig,
    Receipt,
)
from .runtime import LinkEmulator, LinkEnd, LinkStatus, Message
from .supervisor import SafetyAction, SupervisorConfig, SupervisorState, supervise

__all__ = [
    "AckState",
    "Channel",
    "ChannelConfig",
    "ChannelStats",
    "Command",
    "CommandGate",
    "CommandQueue",
    "Delivery",
    "Fate",
    "GateConfig",
    "GilbertElliottConfig",
    "JitterConfig",
    "LinkEmulator",
    "LinkEnd",
    "LinkProfile",
    "LinkStatus",
    "LosSchedule",
    "Message",
    "Outcome",
    "PeriodicLos",
    "ProtocolError",
    "QueueConfig",
    "Receipt",
    "SafetyAction",
    "SupervisorConfig",
    "SupervisorState",
    "available_profiles",
    "load_profile",
    "load_station_keys",
    "supervise",
]
