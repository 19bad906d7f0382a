import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import type { LightMyRequestResponse } from 'fastify';
import { Redis } from 'ioredis';
import { parseIssueFile } from '../../src/issues/issue-file.js';
import { escapeHtml } from '../../src/web/escape.js';
import { createTestContext, REDIS_URL, useTestContext, type TestContext } from '../support/context.js';
import { headerOf, SmtpSink, type ReceivedMail } from '../support/smtp-sink.js';

const t = useTestContext();

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bench = parseIssueFile(readFileSync(path.join(root, 'bench/issue-30kb.md'), 'utf8'));

// Everything a subject line can trip over: &, quotes, |, <, emoji, em dash, non-ASCII, and
// something that looks like an encoded word.
const AWKWARD = `Tom & Jerry's "best" | <50 ms 📬 — café Zürich =?utf-8?q?x?= [final]`;

type Issue = { id: number; slug: string; subject: string; status: string; updatedAt: string; sections: { id: string; title: string }[] };
type Result = { to: string; status: 'submitted' | 'rejected'; response: string };

const api = (method: 'GET' | 'POST', url: string, payload?: unknown) =>
  t.app.inject({ method, url, headers: t.auth, ...(payload !== undefined ? { payload: payload as object } : {}) });

async function create(input: { subject: string; markdown: string; preheader?: string }): Promise<Issue> {
  const res = await api('POST', '/api/issues', input);
  if (res.statusCode !== 201) throw new Error(`POST /api/issues: ${res.statusCode} ${res.body}`);
  return res.json() as Issue;
}

async function testSend(id: number, to: unknown): Promise<LightMyRequestResponse> {
  return api('POST', `/api/issues/${id}/test`, { to });
}

function expectError(res: LightMyRequestResponse, status: number, code?: string): { code: string; message: string; details?: unknown } {
  expect([res.statusCode, res.body]).toEqual([status, expect.any(String)]);
  const body = res.json() as { error: { code: string; message: string; details?: unknown } };
  expect(body.error).toMatchObject({ code: code ?? expect.any(String), message: expect.any(String) });
  return body.error;
}

/** Mail the sink holds for one address. The API answers only after the relay's 250, so no wait is needed. */
const mailTo = (address: string): ReceivedMail[] => t.smtp.messages.filter((m) => m.recipients.includes(address));

/** Row counts of every table in the test database. */
async function tableCounts(): Promise<Record<string, number>> {
  const { rows: tables } = await t.c.pool.query<{ name: string }>(
    `SELECT quote_ident(table_name) AS name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1`,
  );
  const out: Record<string, number> = {};
  for (const { name } of tables) out[name] = Number((await t.c.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${name}`)).rows[0]!.n);
  return out;
}

/** Every Redis key under this test file's queue prefix. */
async function redisKeys(): Promise<string[]> {
  const redis = new Redis(REDIS_URL);
  try {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${t.config.queuePrefix}:*`, 'COUNT', 500);
      keys.push(...batch);
      cursor = next;
    } while (cursor !== '0');
    return keys.sort();
  } finally {
    redis.disconnect();
  }
}

const markdown = [
  'Hello and welcome: **this week** in brief.',
  '',
  `## ${AWKWARD}`,
  '',
  'First section, with a [link](https://example.com/a?b=1&c=2).',
  '',
  '## Zürich «notes» & more',
  '',
  'Second section.',
  '',
  '## People moves',
  '',
  '- Someone went somewhere.',
].join('\n');

let issue: Issue;
beforeAll(async () => {
  issue = await create({ subject: AWKWARD, markdown, preheader: 'A teaser — with “quotes”' });
});
afterEach(() => {
  t.smtp.rejectRecipient = () => undefined;
});

describe('POST /api/issues/:id/test', () => {
  it('mails each address the preview, marked [Test], with the one-click unsubscribe headers', async () => {
    const to = ['editor@example.com', 'second.reader@example.org'];
    const res = await testSend(issue.id, to);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      results: to.map((address) => ({ to: address, status: 'submitted', response: expect.stringMatching(/^250\b/) })),
    });

    const preview = await api('GET', `/api/issues/${issue.id}/preview`);
    const previewText = await api('GET', `/api/issues/${issue.id}/preview?format=text`);
    expect(preview.statusCode).toBe(200);

    for (const address of to) {
      const mail = await t.smtp.waitFor((m) => m.recipients.includes(address));
      expect(mailTo(address)).toHaveLength(1);
      expect(mail.recipients).toEqual([address]);
      // The subject decodes to exactly what the editor wrote, with the marker in front.
      expect(mail.parsed.subject).toBe(`[Test] ${AWKWARD}`);
      expect(mail.parsed.from?.value).toEqual([{ name: 'The Test Letter', address: 'news@broadside.test' }]);
      expect(mail.parsed.to && !Array.isArray(mail.parsed.to) ? mail.parsed.to.text : undefined).toBe(address);
      expect(headerOf(mail, 'x-broadside-test')).toBe('yes');
      expect(headerOf(mail, 'list-unsubscribe')).toBe('<http://broadside.test/unsubscribe/sample>');
      expect(headerOf(mail, 'list-unsubscribe-post')).toBe('List-Unsubscribe=One-Click');
      // Header lines are plain ASCII on the wire (encoded words), whatever the subject holds.
      const headerBlock = mail.raw.slice(0, mail.raw.indexOf('\r\n\r\n'));
      expect(headerBlock).toMatch(/^[\x20-\x7e\r\n\t]*$/);
      expect(headerBlock).not.toMatch(/^bcc:/im);

      // Both parts, exactly as the preview shows them: what a reader would get.
      expect(mail.parsed.html).toBeTruthy();
      expect(mail.parsed.text).toBeTruthy();
      expect(mail.parsed.html).toBe(preview.body);
      expect(mail.parsed.text).toBe(previewText.body);
      expect(mail.parsed.html).toContain('Hi Sample Reader,');
      expect(mail.parsed.html).not.toContain('{{');
      for (const s of issue.sections) {
        expect(mail.parsed.html).toContain(`<a href="#${s.id}">${escapeHtml(s.title)}</a>`);
        expect(mail.parsed.html).toMatch(new RegExp(`<h2 id="${s.id}"[ >]`));
        expect(mail.parsed.text).toContain(s.title);
      }
    }
  });

  it("sends the 30 KB benchmark issue under Gmail's 102 KB clipping limit, with every section in both parts", async () => {
    const big = await create(bench);
    const res = await testSend(big.id, ['bench@example.com']);
    expect(res.statusCode).toBe(200);
    expect((res.json() as { results: Result[] }).results).toEqual([{ to: 'bench@example.com', status: 'submitted', response: expect.any(String) }]);
    const mail = await t.smtp.waitFor((m) => m.recipients.includes('bench@example.com'));
    expect(mail.parsed.subject).toBe(`[Test] ${bench.subject}`);
    const html = mail.parsed.html || '';
    expect(Buffer.byteLength(html)).toBeGreaterThan(30 * 1024);
    expect(Buffer.byteLength(html)).toBeLessThan(102 * 1024);
    expect(html).toBe((await api('GET', `/api/issues/${big.id}/preview`)).body);
    expect(big.sections).toHaveLength(10);
    for (const s of big.sections) {
      expect(html).toContain(`<a href="#${s.id}">${escapeHtml(s.title)}</a>`);
      expect(html).toMatch(new RegExp(`<h2 id="${s.id}"[ >]`));
      expect(mail.parsed.text).toContain(`${s.title}\n`);
    }
  });

  it('refuses more than 10 addresses, an invalid address (naming it) and a malformed list, sending nothing', async () => {
    const before = t.smtp.messages.length;
    const eleven = Array.from({ length: 11 }, (_, i) => `r${i}@example.com`);
    expectError(await testSend(issue.id, eleven), 400, 'invalid_input');

    const bad = expectError(await testSend(issue.id, ['fine@example.com', 'not-an-address']), 400, 'invalid_input');
    expect(bad.message).toContain('not-an-address');
    expect(bad.message).not.toContain('fine@example.com');
    const injected = expectError(await testSend(issue.id, ['ok@example.com', 'x@example.com\r\nBcc: victim@example.net']), 400, 'invalid_input');
    expect(injected.message).toContain('x@example.com');
    expectError(await testSend(issue.id, ['ok@example.com', '']), 400, 'invalid_input');

    for (const to of [[], 'one@example.com', [42], [null], { a: 'b@example.com' }]) {
      const res = await testSend(issue.id, to);
      expect([JSON.stringify(to), res.statusCode]).toEqual([JSON.stringify(to), 400]);
    }
    expectError(await api('POST', `/api/issues/${issue.id}/test`, {}), 400);
    expectError(
      await t.app.inject({
        method: 'POST',
        url: `/api/issues/${issue.id}/test`,
        headers: { ...t.auth, 'content-type': 'application/json' },
        payload: '{"to": [',
      }),
      400,
      'invalid_json',
    );
    expect(t.smtp.messages.length).toBe(before);
  });

  it('accepts exactly 10 addresses', async () => {
    const ten = Array.from({ length: 10 }, (_, i) => `ten${i}@example.com`);
    const res = await testSend(issue.id, ten);
    expect(res.statusCode).toBe(200);
    expect((res.json() as { results: Result[] }).results.map((r) => [r.to, r.status])).toEqual(ten.map((a) => [a, 'submitted']));
    for (const a of ten) expect(mailTo(a)).toHaveLength(1);
  });

  it('sends a repeated address once', async () => {
    const res = await testSend(issue.id, ['dup@example.com', 'dup@example.com', '  dup@example.com ', 'other-dup@example.com']);
    expect(res.statusCode).toBe(200);
    expect((res.json() as { results: Result[] }).results.map((r) => r.to)).toEqual(['dup@example.com', 'other-dup@example.com']);
    expect(mailTo('dup@example.com')).toHaveLength(1);
    expect(mailTo('other-dup@example.com')).toHaveLength(1);
  });

  it('reports an address the relay refuses as rejected and still sends to the others', async () => {
    t.smtp.rejectRecipient = (a) => (a === 'refused@example.com' ? { code: 550, message: '5.1.1 No such mailbox here' } : undefined);
    const res = await testSend(issue.id, ['refused@example.com', 'accepted@example.com']);
    expect(res.statusCode).toBe(200);
    const { results } = res.json() as { results: Result[] };
    expect(results).toEqual([
      { to: 'refused@example.com', status: 'rejected', response: expect.stringContaining('550') },
      { to: 'accepted@example.com', status: 'submitted', response: expect.stringMatching(/^250\b/) },
    ]);
    expect(results[0]!.response).toContain('No such mailbox');
    expect(mailTo('accepted@example.com')).toHaveLength(1);
    expect(mailTo('refused@example.com')).toHaveLength(0);
  });

  it('reports a temporary refusal (4xx) as rejected too', async () => {
    t.smtp.rejectRecipient = (a) => (a === 'greylisted@example.com' ? { code: 451, message: '4.7.1 Try again later' } : undefined);
    const res = await testSend(issue.id, ['greylisted@example.com']);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ results: [{ to: 'greylisted@example.com', status: 'rejected', response: expect.stringContaining('451') }] });
  });

  it('is not a send: no rows, no jobs, and the issue stays a draft, unchanged', async () => {
    const counts = await tableCounts();
    const keys = await redisKeys();
    const before = (await api('GET', `/api/issues/${issue.id}`)).json() as Issue;

    const res = await testSend(issue.id, ['quiet@example.com']);
    expect(res.statusCode).toBe(200);
    expect(mailTo('quiet@example.com')).toHaveLength(1);

    expect(await tableCounts()).toEqual(counts);
    expect(await redisKeys()).toEqual(keys);
    const after = (await api('GET', `/api/issues/${issue.id}`)).json() as Issue;
    expect(after).toEqual(before);
    expect(after.status).toBe('draft');
    // Still not in the public archive.
    expect((await t.app.inject({ method: 'GET', url: `/issues/${issue.slug}`, headers: { accept: 'application/json' } })).statusCode).toBe(404);
  });

  it('answers 404 for an unknown issue, 400 for a bad id and 401 without the token', async () => {
    const before = t.smtp.messages.length;
    expectError(await testSend(999999, ['a@example.com']), 404, 'not_found');
    expectError(await testSend(Number.NaN, ['a@example.com']), 400);
    const anonymous = await t.app.inject({ method: 'POST', url: `/api/issues/${issue.id}/test`, payload: { to: ['a@example.com'] } });
    expectError(anonymous, 401, 'unauthorized');
    expect(t.smtp.messages.length).toBe(before);
  });
});

describe('POST /api/issues/:id/test with the relay unreachable', () => {
  let down: TestContext;
  beforeAll(async () => {
    // A port that was free a moment ago and has nobody listening now.
    const gone = await new SmtpSink().start();
    const url = gone.url;
    await gone.close();
    down = await createTestContext({ env: { SMTP_URL: url } });
  });
  afterAll(async () => {
    await down?.close();
  });

  it('answers 502 smtp_unavailable rather than reporting the address as rejected', async () => {
    const created = await down.app.inject({ method: 'POST', url: '/api/issues', headers: down.auth, payload: { subject: 'Nobody home', markdown: 'x' } });
    expect(created.statusCode).toBe(201);
    const res = await down.app.inject({
      method: 'POST',
      url: `/api/issues/${(created.json() as Issue).id}/test`,
      headers: down.auth,
      payload: { to: ['a@example.com'] },
    });
    expectError(res, 502, 'smtp_unavailable');
  });
});
