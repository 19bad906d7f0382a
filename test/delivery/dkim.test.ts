import { generateKeyPairSync } from 'node:crypto';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { useTestContext } from '../support/context.js';
import { editor, workersIdle } from '../support/editor.js';
import { addReaders } from '../support/readers.js';
import { headerOf, type ReceivedMail } from '../support/smtp-sink.js';

// A key made for this run; the "DNS" below publishes its public half.
const { privateKey, publicKey } = generateKeyPairSync('rsa', {
  modulusLength: 2048,
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  publicKeyEncoding: { type: 'spki', format: 'der' },
});
const DOMAIN = 'broadside.test';
const SELECTOR = 's2026';

const t = useTestContext({ worker: true, env: { DKIM_DOMAIN: DOMAIN, DKIM_SELECTOR: SELECTOR, DKIM_PRIVATE_KEY: privateKey } });

/** A DNS resolver that knows one TXT record: the key under `<selector>._domainkey.<domain>`. */
function resolverFor(publicKeyDer: Buffer) {
  return async (name: string, rrtype: string): Promise<string[][]> => {
    if (rrtype === 'TXT' && name.toLowerCase() === `${SELECTOR}._domainkey.${DOMAIN}`) {
      return [[`v=DKIM1; k=rsa; p=${publicKeyDer.toString('base64')}`]];
    }
    throw Object.assign(new Error(`no ${rrtype} record for ${name}`), { code: 'ENOTFOUND' });
  };
}
const resolver = resolverFor(publicKey);

const SUBJECT = `Signed & "sealed" | <delivered> 📬 — café`;
let mail: ReceivedMail;

beforeAll(async () => {
  await addReaders(t, [{ email: 'signed@example.com', name: 'Zoë "Signed" Reader' }]);
  const e = editor(t);
  const issue = await e.createIssue({ subject: SUBJECT, markdown: `Hello, a line with = and é.\n\n## A section\n\n${'Long text that wraps. '.repeat(20)}` });
  await e.trigger(issue.id);
  mail = await t.smtp.waitFor((m) => m.recipients.includes('signed@example.com') && headerOf(m, 'x-broadside-message') !== undefined);
  // The send finishes (and its fan-out lets go of its database client) before the tests run.
  await e.waitForStatus(issue.id, 'done', 10_000);
  await workersIdle(t);
});

describe('DKIM signing of issue copies', () => {
  it('signs each copy with DKIM_DOMAIN and DKIM_SELECTOR, and an independent verifier passes it', async () => {
    expect(mail.raw.match(/^DKIM-Signature:/gim)).toHaveLength(1);
    const result = await dkimVerify(Buffer.from(mail.raw, 'latin1'), { resolver });
    expect(result.results).toHaveLength(1);
    const [r] = result.results;
    expect(r).toMatchObject({ signingDomain: DOMAIN, selector: SELECTOR, status: { result: 'pass' } });
    expect(r!.info).toMatch(/^dkim=pass header\.i=@broadside\.test header\.s=s2026 header\.a=rsa-sha256\b/);
    // d= is the From domain: aligned for DMARC.
    expect(result.headerFrom).toEqual(['news@broadside.test']);
    expect(r!.status.aligned).toBe(DOMAIN);
  });

  it('covers the headers readers and mailbox providers rely on, List-Unsubscribe-Post included (RFC 8058)', () => {
    const signature = headerOf(mail, 'dkim-signature')!;
    const signed = (/(?:^|;)\s*h=([^;]+)/.exec(signature)?.[1] ?? '').replace(/\s+/g, '').toLowerCase().split(':');
    for (const h of ['from', 'to', 'subject', 'date', 'message-id', 'list-unsubscribe', 'list-unsubscribe-post', 'list-id', 'mime-version', 'content-type']) {
      expect([h, signed.includes(h)]).toEqual([h, true]);
    }
    expect(signature).toMatch(new RegExp(`(?:^|;)\\s*d=${DOMAIN.replace('.', '\\.')}\\s*(;|$)`));
    expect(signature).toMatch(new RegExp(`(?:^|;)\\s*s=${SELECTOR}\\s*(;|$)`));
  });

  it('fails a copy whose body or signed headers were changed on the way', async () => {
    const raw = mail.raw;
    const bodyStart = raw.indexOf('\r\n\r\n');
    // One character of the body changed.
    const i = raw.indexOf('Hello', bodyStart);
    expect(i).toBeGreaterThan(bodyStart);
    const tamperedBody = `${raw.slice(0, i)}Jello${raw.slice(i + 5)}`;
    const body = await dkimVerify(Buffer.from(tamperedBody, 'latin1'), { resolver });
    expect(body.results[0]!.status.result).not.toBe('pass');
    expect(['fail', 'neutral']).toContain(body.results[0]!.status.result);

    // The one-click unsubscribe target replaced.
    const tamperedHeader = raw.replace(/^List-Unsubscribe: <[^>]+>/m, 'List-Unsubscribe: <https://evil.example/unsubscribe/x>');
    expect(tamperedHeader).not.toBe(raw);
    expect((await dkimVerify(Buffer.from(tamperedHeader, 'latin1'), { resolver })).results[0]!.status.result).toBe('fail');

    // The subject replaced.
    const tamperedSubject = raw.replace(/^Subject: .*(\r\n[ \t].*)*/m, 'Subject: Something else');
    expect(tamperedSubject).not.toBe(raw);
    expect((await dkimVerify(Buffer.from(tamperedSubject, 'latin1'), { resolver })).results[0]!.status.result).toBe('fail');
  });

  it('fails against a key other than the one published', async () => {
    const other = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'der' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    const result = await dkimVerify(Buffer.from(mail.raw, 'latin1'), { resolver: resolverFor(other.publicKey) });
    expect(result.results[0]!.status.result).toBe('fail');
  });
});
