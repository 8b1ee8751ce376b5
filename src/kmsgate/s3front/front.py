"""The S3 API as a front of the request wrapper (``kmsgate.web.exchange.Front``), and request ids.

Every response carries ``x-amz-request-id`` (and ``x-amz-id-2``, S3's host id), added as the
response is prepared, so errors and streamed bodies alike have it; an error document names
the same id. Failures are rendered as S3's XML error document (``kmsgate.s3.errors``) with
the request's path as its ``Resource``.
"""

from __future__ import annotations

import secrets

from aiohttp import web

from kmsgate.gateway.errors import saturated
from kmsgate.gateway.service import Gateway
from kmsgate.s3.errors import InvalidRequest, NotModified, RequestHeaderSectionTooLarge, S3Error, error_document
from kmsgate.s3front.auth import S3Authenticator
from kmsgate.s3front.errors import retry_after, to_s3_error
from kmsgate.web.exchange import Authenticated, Exchange, Failure
from kmsgate.web.malformed import Malformed

REQUEST_ID_HEADER = "x-amz-request-id"
HOST_ID_HEADER = "x-amz-id-2"
XML_CONTENT_TYPE = "application/xml"
_REQUEST_ID = "kmsgate.s3.request_id"
REGION: web.AppKey[str] = web.AppKey("s3_region", str)
"""The region the S3 application answers for (GetBucketLocation, HeadBucket, CreateBucket)."""
AUTHENTICATOR: web.AppKey[S3Authenticator] = web.AppKey("s3_authenticator", S3Authenticator)
"""How the S3 application authenticates (set at its startup, once identities are loaded)."""


def request_id(request: web.Request) -> str:
    """This request's id (16 upper-case hex digits, as S3's look), made on first use."""
    rid = request.get(_REQUEST_ID)
    if not isinstance(rid, str):
        rid = request[_REQUEST_ID] = secrets.token_hex(8).upper()
    return rid


async def add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: the request id on every response of the S3 application."""
    rid = request_id(request)
    response.headers[REQUEST_ID_HEADER] = rid
    response.headers[HOST_ID_HEADER] = rid


def malformed_answer(malformed: Malformed, target: str | None) -> web.Response:
    """A request that is not well-formed HTTP/1.1, as S3 answers it (``kmsgate.web.malformed``)."""
    err = RequestHeaderSectionTooLarge() if malformed.too_long else InvalidRequest(malformed.message)
    rid = secrets.token_hex(8).upper()
    return web.Response(status=err.status, body=error_document(err, request_id=rid), content_type=XML_CONTENT_TYPE,
                        headers={REQUEST_ID_HEADER: rid, HOST_ID_HEADER: rid})


class S3Front:
    """S3's authentication and error documents, for ``exchange.endpoint``."""

    compressed_body_refusal = None  # an object's Content-Encoding is stored, not applied

    async def authenticate(self, request: web.Request, gateway: Gateway) -> Authenticated:
        return request.app[AUTHENTICATOR].authenticate(request)

    def failure(self, exc: BaseException) -> Failure:
        err = to_s3_error(exc)
        return Failure(err.status, err.code, err, retry_after=retry_after(exc) if err.status == 503 else None)

    def saturated(self) -> Failure:
        return self.failure(saturated())

    def render(self, failure: Failure, request: web.Request, exchange: Exchange) -> web.Response:
        err = failure.error if isinstance(failure.error, S3Error) else to_s3_error(failure.error)
        headers = {} if failure.retry_after is None else {"Retry-After": str(failure.retry_after)}
        body = error_document(err, request_id=request_id(request), resource=request.path)
        if isinstance(err, NotModified):  # no body at all, and the validators a cache revalidates with
            headers.update(err.headers)
            return web.Response(status=err.status, body=b"", headers=headers)
        return web.Response(status=err.status, body=body, content_type=XML_CONTENT_TYPE, headers=headers)
