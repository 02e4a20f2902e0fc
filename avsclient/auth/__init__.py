"""Login with Amazon: token refresh, code-based linking, client credentials, token storage.

`avsclient.auth.lwa` is the sans-IO core (requests, replies, retries, the code-pair state
machine); `http` and `linking` drive it over HTTP/2 with httpx; `provider` offers the
`TokenProvider` interface the connection manager consumes; `store` keeps the token file.
Constants (`DEFAULT_LWA_URL`, `TOKEN_PATH`, ...) live in `avsclient.auth.lwa`; `LWA_RETRY`,
the retry schedule, is exported here too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from avsclient import _lazy

if TYPE_CHECKING:
    from avsclient.auth.codepair import CodePairLinking, LinkingState
    from avsclient.auth.http import LWAHttpClient, LWAReply, run_exchange
    from avsclient.auth.linking import CodeCallback, link_device
    from avsclient.auth.lwa import (
        LWA_RETRY,
        CodePair,
        CodePairReceived,
        LWAConfig,
        LWAEvent,
        LWARequest,
        LWARetryScheduled,
        PollScheduled,
        RetryPolicy,
        TokenExchange,
        TokenSet,
        TokensReceived,
        client_credentials_request,
        codepair_request,
        device_token_request,
        parse_token_reply,
        refresh_request,
    )
    from avsclient.auth.provider import (
        ClientCredentialsTokenProvider,
        RefreshingTokenProvider,
        StaticTokenProvider,
        TokenProvider,
    )
    from avsclient.auth.store import StoredTokens, TokenStore, default_token_path
else:
    __getattr__, __dir__ = _lazy.exports(
        __name__,
        {
            "avsclient.auth.codepair": ("CodePairLinking", "LinkingState"),
            "avsclient.auth.http": ("LWAHttpClient", "LWAReply", "run_exchange"),
            "avsclient.auth.linking": ("CodeCallback", "link_device"),
            "avsclient.auth.lwa": (
                "LWA_RETRY",
                "CodePair",
                "CodePairReceived",
                "LWAEvent",
                "LWAConfig",
                "LWARequest",
                "PollScheduled",
                "RetryPolicy",
                "LWARetryScheduled",
                "TokenExchange",
                "TokenSet",
                "TokensReceived",
                "client_credentials_request",
                "codepair_request",
                "device_token_request",
                "parse_token_reply",
                "refresh_request",
            ),
            "avsclient.auth.provider": (
                "ClientCredentialsTokenProvider",
                "RefreshingTokenProvider",
                "StaticTokenProvider",
                "TokenProvider",
            ),
            "avsclient.auth.store": ("StoredTokens", "TokenStore", "default_token_path"),
        },
    )

__all__ = [
    "ClientCredentialsTokenProvider",
    "CodeCallback",
    "CodePair",
    "CodePairLinking",
    "CodePairReceived",
    "LWAConfig",
    "LWAEvent",
    "LWAHttpClient",
    "LWAReply",
    "LWARequest",
    "LWARetryScheduled",
    "LWA_RETRY",
    "LinkingState",
    "PollScheduled",
    "RefreshingTokenProvider",
    "RetryPolicy",
    "StaticTokenProvider",
    "StoredTokens",
    "TokenExchange",
    "TokenProvider",
    "TokenSet",
    "TokenStore",
    "TokensReceived",
    "client_credentials_request",
    "codepair_request",
    "default_token_path",
    "device_token_request",
    "link_device",
    "parse_token_reply",
    "refresh_request",
    "run_exchange",
]
