"""``usercore.aio.authenticate``: request headers to a principal, as the sync web layer does."""

from __future__ import annotations

import pytest

from tests.services.conftest import PASSWORD
from usercore import SYSTEM, AuthenticationError, TokenError
from usercore.aio import AsyncUserCore, authenticate
from usercore.web._core import authenticate as sync_authenticate

pytestmark = pytest.mark.anyio


async def test_bearer_tokens_and_api_keys_name_their_principal(acore: AsyncUserCore) -> None:
    ada = await acore.users.register(email="ada@example.com", password=PASSWORD)
    pair = await acore.auth.login("ada@example.com", PASSWORD)
    _, key = await acore.api_keys.create(SYSTEM, ada.id, name="cron")

    by_token = await authenticate(acore, {"authorization": f"Bearer {pair.access_token}"})
    by_bearer_key = await authenticate(acore, {"authorization": f"Bearer {key}"})
    by_header_key = await authenticate(acore, {"x-api-key": key})
    assert by_token is not None
    assert by_token.user_id == ada.id
    assert by_bearer_key is not None
    assert by_bearer_key.method == "api_key"
    assert by_header_key == by_bearer_key
    assert await authenticate(acore, {}) is None


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({"authorization": "Basic YWRhOnB3"}, AuthenticationError),
        ({"authorization": "Bearer "}, AuthenticationError),
        ({"authorization": "Bearer not.a.jwt"}, TokenError),
        ({"x-api-key": "uc_not_a_key"}, TokenError),
    ],
)
async def test_bad_credentials_raise_what_the_sync_layer_raises(
    acore: AsyncUserCore, headers: dict[str, str], error: type[Exception]
) -> None:
    with pytest.raises(error) as sync_error:
        sync_authenticate(acore.sync, headers)
    with pytest.raises(error) as async_error:
        await authenticate(acore, headers)
    assert repr(sync_error.value) == repr(async_error.value)
