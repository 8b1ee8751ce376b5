"""The S3 wire format: XML bodies, error documents and the small header formats.

Everything here is pure and synchronous (bytes and strings in, values or bytes out), so
the HTTP adapter for the S3-compatible front stays thin:

- ``errors``: the S3 error tree, the error document, and KMS failures as S3 reports them.
- ``xmlwriter`` / ``xmlreader``: escaping and rendering responses; parsing requests safely.
- ``listings``, ``multipart``, ``deletion``, ``copying``, ``bucket_config``: one module per
  family of request and response documents.
- ``checksums``, ``etags``, ``conditions``, ``ranges``, ``headers``, ``dates``: header formats.
- ``metadata``: the stored per-object metadata record (encrypted by the gateway).
"""
