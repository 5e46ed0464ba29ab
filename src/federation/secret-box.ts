import { createHash } from 'node:crypto';
import { CompactEncrypt, compactDecrypt } from 'jose';

/**
 * Encrypts secrets at rest (upstream client secrets) as compact JWEs (dir, A256GCM) under keys from
 * the environment. The first key encrypts; every key decrypts, found by the `kid` in the header,
 * so a new key can be put first while old ciphertexts still open.
 */
export type SecretBox = {
  readonly available: boolean;
  seal(plaintext: string): Promise<string>;
  open(sealed: string): Promise<string>;
};

export class SecretKeyMissingError extends Error {
  constructor() {
    super('CONNECTION_SECRET_KEYS is not set: no key to encrypt upstream client secrets with');
  }
}

/** A sealed secret names a key this server was not given (dropped from CONNECTION_SECRET_KEYS too early, or never set). */
export class SecretKeyUnknownError extends Error {
  constructor(readonly kid: string | undefined) {
    super(`a secret is sealed under key ${kid ?? '(none named)'}, which is not among CONNECTION_SECRET_KEYS`);
  }
}

const keyId = (key: Uint8Array) => createHash('sha256').update(key).digest('base64url').slice(0, 12);

/** `encodedKeys`: 32-byte keys, base64 or base64url. */
export function createSecretBox(encodedKeys: readonly string[]): SecretBox {
  const keys = encodedKeys.map((k) => new Uint8Array(Buffer.from(k, 'base64')));
  const byId = new Map(keys.map((k) => [keyId(k), k]));
  const current = keys[0];
  return {
    available: current !== undefined,
    async seal(plaintext) {
      if (!current) throw new SecretKeyMissingError();
      return new CompactEncrypt(new TextEncoder().encode(plaintext))
        .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', kid: keyId(current) })
        .encrypt(current);
    },
    async open(sealed) {
      const { plaintext } = await compactDecrypt(sealed, (header) => {
        const key = header.kid ? byId.get(header.kid) : undefined;
        if (!key) throw new SecretKeyUnknownError(header.kid);
        return key;
      });
      return new TextDecoder().decode(plaintext);
    },
  };
}
