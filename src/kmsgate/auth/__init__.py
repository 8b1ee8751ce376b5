"""Authentication and authorization: identities, SigV4, key policies, grants and the audit log.

Modules: ``identities`` (who may sign), ``sigv4`` (verifying signed requests, in two phases:
headers, then payload), ``sigv4_canonical`` (canonical requests, strings to sign, signing keys),
``sigv4_authorization`` (parsing what a request claims), ``sigv4_chunked`` (chunk-signed
bodies), ``conditions`` and
``policy`` (key policy documents), ``key_policies`` (the policies kmsgate writes), ``grants``,
``authorizer`` (the one decision point), ``audit`` (the audit file) and ``adapters`` (the same
pieces shaped for the KMS adapter, the service and the gateway).

Where kmsgate deliberately differs from AWS KMS:

* No IAM. The account root identity is all-powerful (key policies and grants are not consulted
  for it, an explicit Deny included), and a policy statement naming ``arn:aws:iam::<acct>:root``
  grants that identity only instead of delegating to IAM policies. Other principals need an
  Allow in the key policy or a grant. Account-level actions (CreateKey, ListKeys…) are granted per
  principal by ``account_actions`` in the identities file; by default ListKeys, ListAliases,
  ListRetirableGrants (own grants only) and GenerateRandom.
* Principals are IAM users and roles of the one account, declared in a file; there is no STS, so
  session tokens are refused and ``Service``/``Federated`` policy principals never match.
* SigV4: the KMS API and the gateway accept header signatures only; presigned URLs and
  chunk-signed uploads are verified by ``sigv4`` but no route takes them yet. Every ``x-amz-*``
  header present must be signed; the KMS API never accepts ``UNSIGNED-PAYLOAD``; a request
  target with a ``#`` fragment or an invalid percent-escape is refused (``InvalidURI``).
* Policy conditions: no policy variables (``${aws:username}``), no ``Binary*`` operators;
  ``kms:GrantIsForAWSResource`` is always false and ``kms:ViaService`` is never present.
* Grants take effect as soon as CreateGrant returns; grant tokens are accepted but never needed.
"""
