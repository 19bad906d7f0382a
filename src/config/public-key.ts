import { createPublicKey, type KeyObject } from 'node:crypto';

/**
 * A public key as providers show it: base64 DER (SPKI), as SendGrid's signed event webhook does,
 * or a PEM "PUBLIC KEY" block. Throws when it is neither. Configuration checks the key with it
 * at start; the webhook that verifies with the key parses it with it too.
 */
export function parsePublicKey(configured: string): KeyObject {
  const text = configured.trim();
  if (text.startsWith('-----BEGIN')) return createPublicKey(text);
  return createPublicKey({ key: Buffer.from(text, 'base64'), format: 'der', type: 'spki' });
}
