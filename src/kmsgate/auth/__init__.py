"""Authentication and authorization: identities, SigV4, key policies, grants and the audit log.

Modules: ``identities`` (who may sign), ``sigv4`` (verifying signed requests), ``conditions`` and
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
* SigV4: header signatures only (no presigned URLs, no chunk-signed streaming uploads); every
  ``x-amz-*`` header present must be signed; the KMS API never accepts ``UNSIGNED-PAYLOAD``.
* Policy conditions: no policy variables (``${aws:username}``), no ``Binary*`` operators;
  ``kms:GrantIsForAWSResource`` is always false and ``kms:ViaService`` is never present.
* Grants take effect as soon as CreateGrant returns; grant tokens are accepted but never needed.
"""
