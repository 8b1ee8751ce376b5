"""The S3-compatible front: S3's REST API over the gateway's services, on its own port.

``app`` builds the aiohttp application; ``dispatch`` routes a request by method, path and
sub-resource to one operation; ``auth`` authenticates it as S3 does; ``bodies`` decodes and
checks request bodies; ``errors`` reports every failure as S3's XML error document;
``buckets``, ``objects``, ``listing``, ``deletes``, ``multipart`` and ``copies`` are the
operations, each a thin adapter over ``kmsgate.gateway.object_service``,
``kmsgate.gateway.bucket_service`` and ``kmsgate.gateway.multipart_service``.
"""
