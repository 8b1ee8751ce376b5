"""kmsgate: a key management service speaking the AWS KMS API, and an envelope-encryption gateway."""
