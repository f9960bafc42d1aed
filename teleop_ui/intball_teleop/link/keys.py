"""Station key files: ``station-id: <64 hex chars>`` per line (YAML mapping).

The onboard end loads every station's key; a ground station loads only its own. Files must
not be readable by group or others (the loader refuses them), and keys are never logged,
sent over the link or put in the web page: the console back end signs commands.

Make a key: ``python -c "import secrets; print(secrets.token_hex(32))"``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import yaml

from intball_nav.config import ConfigError

MIN_KEY_BYTES = 16


def load_station_keys(path: str | Path, *, check_permissions: bool = True) -> dict[str, bytes]:
    """Read ``{station: key}`` from a YAML file of hex keys; ConfigError names the problem."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    if check_permissions and os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path}: key file is accessible by group/others (run: chmod 600 {path})")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path.name}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path.name}: expected a mapping 'station-id: hex key'")
    keys = {}
    for station, value in data.items():
        try:
            key = bytes.fromhex(str(value))
        except ValueError:
            raise ConfigError(f"{path.name}: {station}: key is not hex") from None
        if len(key) < MIN_KEY_BYTES:
            raise ConfigError(
                f"{path.name}: {station}: key has {len(key)} bytes, at least {MIN_KEY_BYTES} needed"
            )
        keys[str(station)] = key
    return keys
