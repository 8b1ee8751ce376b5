// Sign and Verify through kmsgate with the AWS SDK for JavaScript v3 (@aws-sdk/client-kms).
// Reads the endpoint and credentials from the environment (AWS_ENDPOINT_URL_KMS, AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_REGION) and the key id and message from argv; prints one JSON line.
import { KMSClient, SignCommand, VerifyCommand } from "@aws-sdk/client-kms";

const [keyId, message] = process.argv.slice(2);
const client = new KMSClient({ endpoint: process.env.AWS_ENDPOINT_URL_KMS, maxAttempts: 1 });
const bytes = new TextEncoder().encode(message);
const signed = await client.send(
  new SignCommand({ KeyId: keyId, Message: bytes, MessageType: "RAW", SigningAlgorithm: "ECDSA_SHA_256" }),
);
const verified = await client.send(
  new VerifyCommand({
    KeyId: keyId, Message: bytes, MessageType: "RAW", Signature: signed.Signature, SigningAlgorithm: "ECDSA_SHA_256",
  }),
);
let tampered = "valid";
try {
  const other = new TextEncoder().encode(message + "!");
  await client.send(
    new VerifyCommand({
      KeyId: keyId, Message: other, MessageType: "RAW", Signature: signed.Signature, SigningAlgorithm: "ECDSA_SHA_256",
    }),
  );
} catch (error) {
  tampered = error.name;
}
console.log(JSON.stringify({
  keyId: signed.KeyId,
  signature: Buffer.from(signed.Signature).toString("base64"),
  signatureValid: verified.SignatureValid,
  tampered,
}));
