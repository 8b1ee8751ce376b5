"""The key management service: keys, aliases, key material and the cryptographic operations."""
