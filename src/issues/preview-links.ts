import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Signed preview links: `/preview/<issue id base36>.<expiry base36>.<signature>`. The signature
 * is HMAC-SHA256 with SECRET over "broadside:preview", the issue id and the expiry, cut to 128
 * bits. A link opens one issue's preview, read-only, until it expires; it carries no API token
 * and grants nothing else (the reader tokens sign other words, so neither passes for the other).
 */
export class PreviewLinkError extends Error {
  constructor(readonly reason: 'invalid' | 'expired') {
    super(reason === 'expired' ? 'this preview link has expired' : 'this preview link is not valid');
    this.name = 'PreviewLinkError';
  }
}

const TOKEN = /^([0-9a-z]{1,11})\.([0-9a-z]{1,11})\.([A-Za-z0-9_-]{22})$/;

export class PreviewLinks {
  constructor(
    private readonly secret: string,
    private readonly publicUrl: string,
    private readonly ttlMinutes: number,
  ) {}

  /** A link to the issue's preview, valid for PREVIEW_LINK_TTL_MINUTES from `now`. */
  create(issueId: number, now = new Date()): { url: string; token: string; expiresAt: Date } {
    const expiresAt = new Date(Math.floor(now.getTime() / 1000) * 1000 + this.ttlMinutes * 60_000);
    const id = issueId.toString(36);
    const exp = Math.floor(expiresAt.getTime() / 1000).toString(36);
    const token = `${id}.${exp}.${this.signature(id, exp)}`;
    return { url: `${this.publicUrl}/preview/${token}`, token, expiresAt };
  }

  /** The issue the token opens and until when, or PreviewLinkError (a forged one is never called expired). */
  verify(token: string, now = new Date()): { issueId: number; expiresAt: Date } {
    const m = TOKEN.exec(token);
    if (!m) throw new PreviewLinkError('invalid');
    const [, id, exp, sig] = m as unknown as [string, string, string, string];
    if (!timingSafeEqual(Buffer.from(this.signature(id, exp)), Buffer.from(sig))) throw new PreviewLinkError('invalid');
    const issueId = parseInt(id, 36);
    if (!Number.isSafeInteger(issueId) || issueId < 1) throw new PreviewLinkError('invalid');
    const expiresAt = new Date(parseInt(exp, 36) * 1000);
    if (expiresAt.getTime() <= now.getTime()) throw new PreviewLinkError('expired');
    return { issueId, expiresAt };
  }

  private signature(id: string, exp: string): string {
    return createHmac('sha256', this.secret).update(`broadside:preview:${id}:${exp}`).digest().subarray(0, 16).toString('base64url');
  }
}
