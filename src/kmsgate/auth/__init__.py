"""Authentication and authorization: identities, SigV4, key policies, grants and the audit log."""
