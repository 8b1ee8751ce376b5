"""The envelope-encryption gateway: HTTP routes that encrypt into storage, metrics and workers.

Every ``/v1/...`` request is authenticated (``auth``: bearer token or S3-style SigV4) and its KMS
calls act as the caller, with data-key caches kept per caller (``principals``), so key policies
and grants decide who may write or read under which key and context.
"""
