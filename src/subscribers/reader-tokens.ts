import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Signed reader tokens: `<purpose>.<id base36>.<expiry base36 or 0>.<signature>`.
 * The signature is HMAC-SHA256 over purpose, id and expiry with SECRET, cut to 128 bits.
 * Unsubscribe and manage tokens do not expire (links in old emails must keep working), so they
 * grant nothing that a forwarded email should give away: leaving, and seeing the subscription.
 * A confirmation token expires; a data token (download or erase the reader's data) expires
 * within the hour and is only ever mailed to the reader's own address on request.
 * Tokens of one purpose are never accepted for another.
 */
export type TokenPurpose = 'confirm' | 'unsubscribe' | 'manage' | 'data';

const PREFIX: Record<TokenPurpose, string> = { confirm: 'c', unsubscribe: 'u', manage: 'm', data: 'd' };
const TOKEN_MAX_LENGTH = 50;

export class TokenError extends Error {
  constructor(readonly reason: 'malformed' | 'bad_signature' | 'expired') {
    super(reason === 'expired' ? 'this link has expired' : 'this link is not valid');
  }
}

export class ReaderTokens {
  constructor(private readonly secret: string) {}

  sign(purpose: TokenPurpose, subscriberId: number, expiresAt?: Date): string {
    const id = subscriberId.toString(36);
    const exp = expiresAt ? Math.floor(expiresAt.getTime() / 1000).toString(36) : '0';
    return `${PREFIX[purpose]}.${id}.${exp}.${this.signature(purpose, id, exp)}`;
  }

  /** Returns the subscriber id, or throws TokenError. */
  verify(purpose: TokenPurpose, token: string, now = new Date()): number {
    // A well-formed token is at most 1 + 12 + 12 + 22 characters and three dots.
    if (token.length > TOKEN_MAX_LENGTH) throw new TokenError('malformed');
    const parts = token.split('.');
    if (parts.length !== 4 || parts[0] !== PREFIX[purpose]) throw new TokenError('malformed');
    const [, id, exp, sig] = parts as [string, string, string, string];
    if (!/^[0-9a-z]{1,12}$/.test(id) || !/^[0-9a-z]{1,12}$/.test(exp) || !/^[A-Za-z0-9_-]{22}$/.test(sig)) {
      throw new TokenError('malformed');
    }
    const expected = Buffer.from(this.signature(purpose, id, exp));
    if (!timingSafeEqual(expected, Buffer.from(sig))) throw new TokenError('bad_signature');
    if (exp !== '0' && parseInt(exp, 36) * 1000 < now.getTime()) throw new TokenError('expired');
    const subscriberId = parseInt(id, 36);
    if (!Number.isSafeInteger(subscriberId) || subscriberId < 1) throw new TokenError('malformed');
    return subscriberId;
  }

  private signature(purpose: TokenPurpose, id: string, exp: string): string {
    return createHmac('sha256', this.secret).update(`broadside:${purpose}:${id}:${exp}`).digest().subarray(0, 16).toString('base64url');
  }
}
