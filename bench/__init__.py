"""kmsgate-bench: throughput and latency of the gateway and the KMS beside their ceilings and a peer."""
