"""Authentication at the edge: a caller's API key becomes an account id here, and nowhere else.

The gRPC interceptor (`interceptor.Authentication`) is the one place the service reads keys; the servicer and the
engine only ever see the account (`current_account()`). The bridge reads the key of a browser request in one
middleware and forwards it to the service, which decides.
"""

from client.credentials import Reason, Unauthenticated, bearer_token, query_token
from server.auth.authenticator import Authenticator
from server.auth.interceptor import Authentication, acting_as, current_account

__all__ = [
    "Authentication",
    "Authenticator",
    "Reason",
    "Unauthenticated",
    "acting_as",
    "bearer_token",
    "current_account",
    "query_token",
]
