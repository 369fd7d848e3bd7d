"""Process settings from the environment (SPEC §9), resolved once and passed explicitly.

The CLI writes its flags into the environment before starting granian, so every worker
process builds the same ``Settings`` from ``os.environ`` alone.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.config import Config, load_config
from gateway.store.private_files import private_dir

DEFAULT_STORE = "sqlite:///./routegate.db"
MASTER_KEY_FILE = "master.key"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    config_path: str | None = None
    store_override: str | None = None
    admin_key: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            data_dir=Path(env.get("ROUTEGATE_DATA_DIR") or "./routegate-data").resolve(),
            config_path=env.get("ROUTEGATE_CONFIG") or None,
            store_override=env.get("ROUTEGATE_STORE") or None,
            admin_key=env.get("ROUTEGATE_ADMIN_KEY") or None,
        )

    def load_config(self) -> Config:
        return load_config(self.config_path)

    def store_url(self, config: Config) -> str:
        return self.store_override or config.store or DEFAULT_STORE


def load_master_key(data_dir: Path, environ: Mapping[str, str] | None = None) -> bytes:
    """``ROUTEGATE_MASTER_KEY`` when set, else a random key kept (mode 0600) in the data dir."""
    env = os.environ if environ is None else environ
    configured = env.get("ROUTEGATE_MASTER_KEY")
    if configured:
        return hashlib.sha256(configured.encode()).digest()
    path = data_dir / MASTER_KEY_FILE
    if not path.exists():
        private_dir(data_dir)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())
