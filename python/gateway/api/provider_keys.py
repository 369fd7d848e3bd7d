"""Management API (SPEC §8): a workspace's own provider keys (BYOK).

- ``POST /v1/workspaces/{id}/provider-keys`` ``{provider, key, name?}`` stores the key
  encrypted (``byok_crypto``) and answers 201 with its masked form. The provider is a
  configured provider's id or alias that takes a key (not the mock, not a keyless server).
  A workspace's first key for a provider becomes that provider's default.
- ``GET …/provider-keys`` lists them; ``DELETE …/provider-keys/{key_id}`` deletes one.
- ``POST …/provider-keys/{key_id}/validate`` asks the provider (its model list) whether the
  key works and marks it ``active`` or ``invalid``: only active keys serve requests.
- ``POST …/provider-keys/{key_id}/set-default`` makes it the one key of its provider that
  serves the workspace's requests (the others stay stored, as spares).

No answer ever holds the key or its ciphertext, and no error message quotes it. Another
workspace's ids answer 404, as everywhere in the management API. Every write drops this
process's cached keys of the workspace at once; other processes see it within 1 s.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated

import msgspec

from gateway.api.bodies import convert_body
from gateway.api.management import admin_workspace
from gateway.context import Context
from gateway.edge.auth import utc_now
from gateway.edge.http import Request, Response, json_response
from gateway.edge.schemas import decode_object
from gateway.errors import InvalidRequest, NotFound
from gateway.providers import AttemptFailure
from gateway.providers.byok_crypto import DecryptError, mask
from gateway.providers.credentials import check_key
from gateway.providers.dispatch import to_gateway_error
from gateway.store.records import ProviderKey, Workspace

_PRINTABLE = re.compile(r"[\x21-\x7e]+")  # a key travels in an HTTP header: no spaces, no CR/LF


class ProviderKeyCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    provider: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    key: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
    name: Annotated[str, msgspec.Meta(max_length=200)] | None = None


def provider_key_view(key: ProviderKey) -> dict[str, object]:
    """What the API shows of a stored key: never the key, never its ciphertext."""
    return {
        "id": key.id,
        "object": "provider_key",
        "provider": key.provider,
        "name": key.name,
        "masked": key.masked,
        "is_default": key.is_default,
        "status": key.status,
        "created_at": key.created_at,
        "last_validated_at": key.last_validated_at,
    }


def _provider_id(ctx: Context, name: str) -> str:
    """The canonical id of a provider that takes a workspace key; 400 naming ``provider``."""
    catalog = ctx.catalog
    index = catalog.provider(name)
    if index is None:
        raise InvalidRequest(f"Unknown provider '{name}'.", param="provider")
    if not catalog.byok_capable[index]:
        provider = catalog.providers[index].id
        raise InvalidRequest(
            f"Provider '{provider}' takes no API key, so it cannot have one of the workspace's "
            "own.",
            param="provider",
        )
    return catalog.providers[index].id


def _managed_key(ctx: Context, workspace: Workspace, key_id: str) -> ProviderKey:
    key = ctx.store.get_provider_key(workspace.id, key_id)
    if key is None:
        raise NotFound(f"No provider key '{key_id}' in workspace '{workspace.id}'.")
    return key


async def create_provider_key(ctx: Context, request: Request) -> Response:
    workspace = admin_workspace(ctx, request)
    body = convert_body(decode_object(request.body), ProviderKeyCreate)
    provider = _provider_id(ctx, body.provider)
    secret = body.key.strip()
    if not _PRINTABLE.fullmatch(secret):
        raise InvalidRequest(
            "'key' must be printable ASCII without spaces or line breaks.", param="key"
        )
    first = not any(k.provider == provider for k in ctx.store.list_provider_keys(workspace.id))
    record = ProviderKey(
        id="pk_" + uuid.uuid4().hex[:24],
        workspace_id=workspace.id,
        provider=provider,
        ciphertext=ctx.byok.cipher.encrypt(workspace.id, provider, secret),
        masked=mask(secret),
        created_at=utc_now(),
        name=body.name,
        is_default=first,
    )
    ctx.store.create_provider_key(record)
    ctx.byok.invalidate(workspace.id)
    return json_response(provider_key_view(record), status=201)


async def list_provider_keys(ctx: Context, request: Request) -> Response:
    workspace = admin_workspace(ctx, request)
    keys = ctx.store.list_provider_keys(workspace.id)
    return json_response({"object": "list", "data": [provider_key_view(k) for k in keys]})


async def delete_provider_key(ctx: Context, request: Request) -> Response:
    workspace = admin_workspace(ctx, request)
    key = _managed_key(ctx, workspace, request.path_params["key_id"])
    if not ctx.store.delete_provider_key(workspace.id, key.id):  # deleted concurrently
        raise NotFound(f"No provider key '{key.id}' in workspace '{workspace.id}'.")
    ctx.byok.invalidate(workspace.id)
    return json_response({"id": key.id, "object": "provider_key", "deleted": True})


async def validate_provider_key(ctx: Context, request: Request) -> Response:
    """Ask the provider; ``invalid`` when it rejects the key (or the stored key no longer
    decrypts). An answer that says nothing about the key (429, 5xx, unreachable) is the
    mapped SPEC §6 error, and the key's status is left as it was."""
    workspace = admin_workspace(ctx, request)
    key = _managed_key(ctx, workspace, request.path_params["key_id"])
    index = ctx.catalog.provider(key.provider)
    if index is None:  # the provider left the config after the key was stored
        raise InvalidRequest(
            f"Provider '{key.provider}' is no longer configured; delete this key.",
            param="provider",
        )
    config = ctx.catalog.providers[index]
    try:
        secret = ctx.byok.cipher.decrypt(workspace.id, key.provider, key.ciphertext)
    except DecryptError:
        valid = False
    else:
        try:
            valid = await check_key(config, secret)
        except AttemptFailure as failure:
            raise to_gateway_error(key.provider, failure) from None
    checked = msgspec.structs.replace(
        key, status="active" if valid else "invalid", last_validated_at=utc_now()
    )
    ctx.store.update_provider_key(checked)
    ctx.byok.invalidate(workspace.id)
    return json_response(
        {
            "id": key.id,
            "object": "provider_key.validation",
            "valid": valid,
            "status": checked.status,
            "checked_at": checked.last_validated_at,
        }
    )


async def set_default_provider_key(ctx: Context, request: Request) -> Response:
    """This key becomes its provider's default for the workspace; any other loses it."""
    workspace = admin_workspace(ctx, request)
    key = _managed_key(ctx, workspace, request.path_params["key_id"])
    for other in ctx.store.list_provider_keys(workspace.id):
        if other.provider == key.provider and other.is_default and other.id != key.id:
            ctx.store.update_provider_key(msgspec.structs.replace(other, is_default=False))
    chosen = msgspec.structs.replace(key, is_default=True)
    ctx.store.update_provider_key(chosen)
    ctx.byok.invalidate(workspace.id)
    return json_response(provider_key_view(chosen))
