// The editor's web app signs in once with the API token and then holds a session cookie. The
// cookie is stateless and signed: `<id>.<expires>.<signature>`, HMAC-SHA256 under SECRET over the
// id, the expiry and a digest of the API token, so it survives a restart of every process, ends
// at its expiry, and ends at once for everyone when the API token changes. Sign-out records the
// id in Redis until the cookie would have expired (shared by every API process), so a copied
// cookie is worth nothing after its owner signs out.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Redis } from 'ioredis';

export const SESSION_COOKIE = 'broadside_session';
/** The header unsafe requests made with the session must carry (a cross-site form cannot set it). */
export const CSRF_HEADER = 'x-csrf-token';

export type EditorSession = { id: string; expiresAt: Date };

const b64url = (b: Buffer) => b.toString('base64url');

export class EditorSessions {
  private readonly key: Buffer;
  private readonly tokenDigest: string;

  constructor(
    secret: string,
    apiToken: string,
    private readonly redis: Pick<Redis, 'get' | 'set'>,
    private readonly prefix: string,
    private readonly hours: number,
  ) {
    // A key of its own, so a session signature can never be mistaken for a reader token's.
    this.key = createHmac('sha256', secret).update('broadside editor session v1').digest();
    this.tokenDigest = createHash('sha256').update(apiToken).digest('base64url');
  }

  private sign(purpose: string, ...parts: string[]): Buffer {
    return createHmac('sha256', this.key)
      .update([purpose, this.tokenDigest, ...parts].join('\n'))
      .digest();
  }

  /** A new session from now; the cookie's value and the CSRF token that goes with it. */
  open(now = new Date()): { session: EditorSession; cookie: string; csrfToken: string } {
    const id = b64url(randomBytes(16));
    const expires = Math.floor(now.getTime() / 1000) + this.hours * 3600;
    const cookie = `${id}.${expires}.${b64url(this.sign('session', id, String(expires)))}`;
    const session = { id, expiresAt: new Date(expires * 1000) };
    return { session, cookie, csrfToken: this.csrfToken(session) };
  }

  /** The session a cookie value proves, if it is ours, unexpired and not signed out. */
  async verify(value: string | undefined, now = new Date()): Promise<EditorSession | undefined> {
    const m = value === undefined ? null : /^([\w-]{22})\.(\d{1,12})\.([\w-]{43})$/.exec(value);
    if (!m) return undefined;
    const [, id, expires, signature] = m as unknown as [string, string, string, string];
    const expected = this.sign('session', id, expires);
    if (!timingSafeEqual(Buffer.from(signature, 'base64url'), expected)) return undefined;
    const expiresAt = new Date(Number(expires) * 1000);
    if (expiresAt.getTime() <= now.getTime()) return undefined;
    if ((await this.redis.get(this.signedOutKey(id))) !== null) return undefined;
    return { id, expiresAt };
  }

  /** Bound to the session: a token from another session (or none) is refused. */
  csrfToken(session: EditorSession): string {
    return b64url(this.sign('csrf', session.id));
  }

  csrfMatches(session: EditorSession, given: string | undefined): boolean {
    if (given === undefined || !/^[\w-]{43}$/.test(given)) return false;
    return timingSafeEqual(Buffer.from(given, 'base64url'), this.sign('csrf', session.id));
  }

  /** Ends the session for good: remembered until the cookie would have expired anyway. */
  async close(session: EditorSession, now = new Date()): Promise<void> {
    const seconds = Math.max(1, Math.ceil((session.expiresAt.getTime() - now.getTime()) / 1000));
    await this.redis.set(this.signedOutKey(session.id), '1', 'EX', seconds);
  }

  private signedOutKey(id: string): string {
    return `${this.prefix}:editor:signed-out:${id}`;
  }
}

/** The value of one cookie in a Cookie header (the session's value is base64url and dots: no quoting). */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** The Set-Cookie header for the session (or, with no value, the one that clears it). */
export function sessionCookieHeader(value: string | null, opts: { secure: boolean; expiresAt?: Date }): string {
  const parts = [`${SESSION_COOKIE}=${value ?? ''}`, 'Path=/', 'HttpOnly', 'SameSite=Strict'];
  if (opts.secure) parts.push('Secure');
  if (value === null) parts.push('Max-Age=0');
  else if (opts.expiresAt) parts.push(`Expires=${opts.expiresAt.toUTCString()}`);
  return parts.join('; ');
}
