import { createHmac, timingSafeEqual } from 'node:crypto';

/** The shape of a token (its id and its signature as groups), unanchored, to build matchers from. */
const MESSAGE_TOKEN_SHAPE = 'm([0-9a-z]{1,12})-([0-9a-f]{16})';
const TOKEN = new RegExp(`^${MESSAGE_TOKEN_SHAPE}$`);

/**
 * `value` lower-cased when it has a token's shape, else null. The shape only: whoever acts on
 * the token checks its signature with MessageTokens.verify.
 */
export function tokenShaped(value: string | null | undefined): string | null {
  const t = value?.trim().toLowerCase() ?? '';
  return TOKEN.test(t) ? t : null;
}

const VERP = new RegExp(`bounces\\+(${MESSAGE_TOKEN_SHAPE})@`, 'i');

/** The VERP return path of a message: `bounces+<token>@<bounce domain>`. */
export const verpAddress = (token: string, bounceDomain: string): string => `bounces+${token}@${bounceDomain}`;

/** The token of a VERP address (`bounces+<token>@…`) found in `text`, shape-checked only. */
export function verpToken(text: string | null | undefined): string | null {
  return tokenShaped(VERP.exec(text ?? '')?.[1] ?? null);
}

/**
 * Names one message in everything that can come back to us: the VERP return path
 * (`bounces+<token>@BOUNCE_DOMAIN`), the `X-Broadside-Message` header and the Message-ID.
 * `m<message id base36>-<16 hex of HMAC-SHA256>`: lower case only, because mail servers may
 * fold the case of a local part, and signed, so nobody can forge a bounce for another reader.
 */
export class MessageTokens {
  constructor(private readonly secret: string) {}

  sign(messageId: number): string {
    const id = messageId.toString(36);
    return `m${id}-${this.signature(id)}`;
  }

  /** The message id a token names, or undefined when it is not one of ours. */
  verify(token: string): number | undefined {
    const m = TOKEN.exec(token.toLowerCase());
    if (!m) return undefined;
    const expected = Buffer.from(this.signature(m[1]!));
    if (!timingSafeEqual(expected, Buffer.from(m[2]!))) return undefined;
    const id = parseInt(m[1]!, 36);
    return Number.isSafeInteger(id) && id > 0 ? id : undefined;
  }

  private signature(id36: string): string {
    return createHmac('sha256', this.secret).update(`broadside:message:${id36}`).digest('hex').slice(0, 16);
  }
}
