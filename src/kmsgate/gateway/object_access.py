"""Who may do what to stored objects: S3 actions on bucket and object ARNs, decided per request.

Objects are S3 resources: an object is ``arn:aws:s3:::<bucket>/<key>``, its bucket
``arn:aws:s3:::<bucket>``. The ``/v1/objects`` API keeps its objects in one bucket,
``GatewaySettings.default_bucket``. Every object request is checked here before storage or the
KMS is touched:

=============================  ==================  ==========================
request                        action              resource
=============================  ==================  ==========================
PUT                            ``s3:PutObject``    the object
GET, HEAD                      ``s3:GetObject``    the object
DELETE                         ``s3:DeleteObject`` the object
(a GET/HEAD of a missing key)  ``s3:ListBucket``   the bucket
=============================  ==================  ==========================

The decision is the caller's identity policy (``kmsgate.auth.authorizer.authorize_identity_action``):
the account root may do everything; any other principal needs an Allow and no applicable Deny.
A denial is 403 ``AccessDenied``. As in S3, a missing object is reported as 404 ``NoSuchKey``
only to a caller who may list the bucket; anyone else gets 403, so names cannot be probed.

This is the first of two checks: the KMS call that a read or write makes still acts as the
caller, so the key policy and grants decide whether the data key may be used.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from kmsgate.auth.authorizer import RequestFacts, authorize_identity_action
from kmsgate.auth.identities import IdentityDirectory
from kmsgate.core.errors import AccessDeniedError
from kmsgate.core.principal import Caller
from kmsgate.gateway.errors import GatewayError

GET_OBJECT = "s3:GetObject"
PUT_OBJECT = "s3:PutObject"
DELETE_OBJECT = "s3:DeleteObject"
LIST_BUCKET = "s3:ListBucket"

OBJECT_ARN_CONTEXT_KEY = "aws:s3:arn"
"""The encryption-context entry binding a stored message to its object's name (as S3 does for SSE-KMS)."""


def bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def object_arn(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


class ObjectAccess:
    """Identity-policy checks for object actions over one identity directory.

    Without a directory (authentication turned off, every caller the root) only the root passes.
    """

    def __init__(self, directory: IdentityDirectory | None, clock: Callable[[], float] = time.time) -> None:
        self._directory = directory
        self._clock = clock

    def allows(self, caller: Caller, action: str, resource: str) -> bool:
        try:
            self.check(caller, action, resource)
        except GatewayError:
            return False
        return True

    def check(self, caller: Caller, action: str, resource: str) -> None:
        """Return if ``caller`` may perform ``action`` on ``resource``; else 403 ``AccessDenied``."""
        if caller.is_account_root:
            return
        principal = self._directory.principal(caller.arn) if self._directory is not None else None
        try:
            authorize_identity_action(caller, action, resource, principal, RequestFacts(now=self._clock()))
        except AccessDeniedError as exc:
            raise GatewayError(403, "AccessDenied", exc.message) from None


def bind_context(encryption_context: Mapping[str, str], arn: str) -> dict[str, str]:
    """The context an object is stored under: the caller's pairs plus ``aws:s3:arn`` = ``arn``."""
    return {**encryption_context, OBJECT_ARN_CONTEXT_KEY: arn}


def is_bound_to(encryption_context: Mapping[str, str], arn: str) -> bool:
    """Whether a stored message's context names ``arn`` as its object (see ``bind_context``)."""
    return encryption_context.get(OBJECT_ARN_CONTEXT_KEY) == arn
