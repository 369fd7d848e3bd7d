"""BYOK provider keys at rest: AES-256-GCM under a per-workspace key, and their masked form.

Why this shape (SPEC §8):

- **One key per workspace**, derived by HKDF-SHA256 from the gateway master key with the info
  ``routegate/byok/v1/<workspace_id>``. Nothing but the master key has to be kept secret, and
  the key that opens one workspace's rows opens no other workspace's.
- **AEAD with the workspace and provider as associated data.** A ciphertext copied to another
  workspace's row (or relabelled as another provider's key) fails authentication instead of
  decrypting to a working key somewhere it was never meant to be.
- **One base64 string**: a version byte, the random 96-bit nonce, then ciphertext and tag, so
  the store keeps a single opaque column and a later format can be told apart by its first
  byte.

>>> cipher = ByokCipher(b"m" * 32)
>>> token = cipher.encrypt("ws_1", "openai", "sk-live-0123456789abcdef")
>>> cipher.decrypt("ws_1", "openai", token)
'sk-live-0123456789abcdef'
>>> mask("sk-proj-0123456789abcdefWXYZ")
'sk-proj-0123…WXYZ'
"""

from __future__ import annotations

import base64
import binascii
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["VERSION", "ByokCipher", "DecryptError", "derive_workspace_key", "mask"]

VERSION = 1
NONCE_BYTES = 12
_INFO_PREFIX = b"routegate/byok/v1/"
_SHOWN = 4  # characters shown at each end of a masked secret
_MIN_MASKED = 16  # a secret part shorter than this is shown as stars only
# Vendor tags such as ``sk-``, ``sk-proj-``, ``sk-ant-``, ``gsk_``, ``xai-``: not secret, and
# what tells a reader which key it is. At most 8 characters, so a random secret that happens
# to contain a dash cannot pass much of itself off as a "prefix".
_PREFIX = re.compile(r"[a-z]{2,4}(?:-[a-z0-9]{2,4})?[-_]")
_MAX_PREFIX = 8
FULLY_MASKED = "****"


class DecryptError(Exception):
    """The ciphertext is malformed, of an unknown version, or fails authentication (wrong
    master key, workspace or provider). Never carries key material."""


def derive_workspace_key(master_key: bytes, workspace_id: str) -> bytes:
    """The workspace's 256-bit AES key: HKDF-SHA256(master, info=routegate/byok/v1/<id>)."""
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=_INFO_PREFIX + workspace_id.encode(),
    ).derive(master_key)


def _associated_data(workspace_id: str, provider: str) -> bytes:
    """Length-prefixed, so (``a``, ``bc``) and (``ab``, ``c``) never authenticate alike."""
    ws, pv = workspace_id.encode(), provider.encode()
    return b"%d:%s|%d:%s" % (len(ws), ws, len(pv), pv)


class ByokCipher:
    """Encrypts and decrypts provider keys; derives each workspace's key once per process."""

    def __init__(self, master_key: bytes) -> None:
        self._master = master_key
        self._keys: dict[str, AESGCM] = {}

    def _aead(self, workspace_id: str) -> AESGCM:
        aead = self._keys.get(workspace_id)
        if aead is None:
            if len(self._keys) > 10_000:
                self._keys.clear()
            aead = self._keys[workspace_id] = AESGCM(
                derive_workspace_key(self._master, workspace_id)
            )
        return aead

    def encrypt(self, workspace_id: str, provider: str, secret: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead(workspace_id).encrypt(
            nonce, secret.encode(), _associated_data(workspace_id, provider)
        )
        return base64.b64encode(bytes([VERSION]) + nonce + sealed).decode("ascii")

    def decrypt(self, workspace_id: str, provider: str, token: str) -> str:
        try:
            raw = base64.b64decode(token.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise DecryptError("the stored key is not valid base64") from None
        if len(raw) < 1 + NONCE_BYTES + 16 or raw[0] != VERSION:
            raise DecryptError("the stored key has an unknown format")
        nonce, sealed = raw[1 : 1 + NONCE_BYTES], raw[1 + NONCE_BYTES :]
        try:
            plain = self._aead(workspace_id).decrypt(
                nonce, sealed, _associated_data(workspace_id, provider)
            )
        except InvalidTag:
            raise DecryptError("the stored key fails authentication") from None
        try:
            return plain.decode()
        except UnicodeDecodeError:
            raise DecryptError("the stored key is not text") from None


def mask_prefix(secret: str) -> str:
    """The vendor tag at the start of ``secret`` (``sk-``, ``sk-proj-``, …), or ``""``."""
    found = _PREFIX.match(secret)
    if found is None or len(found.group()) > _MAX_PREFIX:
        return ""
    return found.group()


def mask(secret: str) -> str:
    """``sk-abcd…wxyz``: the vendor tag, then the first and last four characters of the rest.

    At most eight characters past the tag are ever shown, and only when the rest is at least
    16 characters long (so at least half of it stays hidden); anything shorter is
    ``****``.
    """
    prefix = mask_prefix(secret)
    rest = secret[len(prefix) :]
    if len(rest) < _MIN_MASKED:
        return FULLY_MASKED
    return f"{prefix}{rest[:_SHOWN]}…{rest[-_SHOWN:]}"
