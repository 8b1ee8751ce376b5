// ML-KEM through kmsgate with the AWS SDK for JavaScript v3 (@aws-sdk/client-kms), whose model has
// Encapsulate, Decapsulate and the ML_KEM_* key specs. Reads the endpoint and credentials from the
// environment (AWS_ENDPOINT_URL_KMS, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION) and the
// key spec from argv; prints one JSON line (binary values base64).
import {
  CreateKeyCommand, DecapsulateCommand, DescribeKeyCommand, EncapsulateCommand, GetPublicKeyCommand, KMSClient,
} from "@aws-sdk/client-kms";

const [keySpec] = process.argv.slice(2);
const client = new KMSClient({ endpoint: process.env.AWS_ENDPOINT_URL_KMS, maxAttempts: 1 });
const b64 = (bytes) => Buffer.from(bytes).toString("base64");
const created = await client.send(new CreateKeyCommand({ KeySpec: keySpec, KeyUsage: "ENCAPSULATE_DECAPSULATE" }));
const keyId = created.KeyMetadata.KeyId;
const described = await client.send(new DescribeKeyCommand({ KeyId: keyId }));
const publicKey = await client.send(new GetPublicKeyCommand({ KeyId: keyId }));
const encapsulated = await client.send(new EncapsulateCommand({ KeyId: keyId, EncapsulationAlgorithm: "ML_KEM" }));
const decapsulated = await client.send(new DecapsulateCommand({
  KeyId: keyId, EncapsulationAlgorithm: "ML_KEM", SharedSecretCiphertextBlob: encapsulated.SharedSecretCiphertextBlob,
}));
let shortCiphertext = "accepted";
try {
  await client.send(new DecapsulateCommand({
    KeyId: keyId, EncapsulationAlgorithm: "ML_KEM", SharedSecretCiphertextBlob: new Uint8Array(100),
  }));
} catch (error) {
  shortCiphertext = error.name;
}
console.log(JSON.stringify({
  keyId,
  keySpec: described.KeyMetadata.KeySpec,
  keyUsage: described.KeyMetadata.KeyUsage,
  encapsulationAlgorithms: described.KeyMetadata.EncapsulationAlgorithms,
  publicKeyAlgorithms: publicKey.EncapsulationAlgorithms,
  publicKey: b64(publicKey.PublicKey),
  sharedSecret: b64(encapsulated.SharedSecret),
  ciphertext: b64(encapsulated.SharedSecretCiphertextBlob),
  decapsulated: b64(decapsulated.SharedSecret),
  decapsulationAlgorithm: decapsulated.EncapsulationAlgorithm,
  shortCiphertext,
}));
