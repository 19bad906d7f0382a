import { describe, expect, it } from '@jest/globals';
import type { InjectOptions } from 'fastify';
import { DATA_LINK_RESEND_MINUTES } from '../../src/subscribers/queries.js';
import { TokenError } from '../../src/subscribers/reader-tokens.js';
import { linkIn, pathOf, useTestContext } from '../support/context.js';
import { until } from '../support/editor.js';
import { addReaders, type Reader } from '../support/readers.js';
import type { ReceivedMail } from '../support/smtp-sink.js';

const t = useTestContext({ worker: true });

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const JSON_ACCEPT = { accept: 'application/json' };

/** A reader with consent evidence worth protecting: the IP and browser they signed up from. */
async function readerWithEvidence(email: string, status: 'active' | 'unsubscribed' | 'bounced' = 'active'): Promise<Reader & { manage: string }> {
  const [reader] = await addReaders(t, [{ email, name: 'Dora Data', status }]);
  await t.c.pool.query(`UPDATE subscribers SET consent_ip = '203.0.113.7', consent_user_agent = 'SecretBrowser/9.9' WHERE id = $1`, [reader!.id]);
  return { ...reader!, manage: pathOf(t.c.links.manage(reader!.id)) };
}

const row = async (id: number) => (await t.c.pool.query('SELECT * FROM subscribers WHERE id = $1', [id])).rows[0];
const dataLinkMails = (email: string) => t.smtp.messages.filter((m) => m.recipients.includes(email) && (m.parsed.subject ?? '').startsWith('Your data at'));
const dataLinkJobs = async (id: number) =>
  (await t.c.queues.readerMail.getJobs(['waiting', 'active', 'delayed', 'completed', 'failed'])).filter(
    (j) => j.data.kind === 'data-link' && j.data.subscriberId === id,
  );

/** Asks for the link from the footer's page and returns the emailed link's path. */
async function mailedDataLink(reader: Reader & { manage: string }): Promise<{ path: string; mail: ReceivedMail }> {
  const before = dataLinkMails(reader.email).length;
  const res = await t.app.inject({ method: 'POST', url: `${reader.manage}/data-link` });
  expect(res.statusCode).toBe(200);
  const mail = await until('the data-link mail', () => dataLinkMails(reader.email)[before]);
  return { path: pathOf(linkIn(mail.parsed.text ?? '', '/data/')), mail };
}

describe("the footer's manage link, which every forwarded issue carries", () => {
  it('shows the subscription and unsubscribes at once, and changes nothing on GET', async () => {
    const reader = await readerWithEvidence('forwarded@example.com');
    const before = await row(reader.id);
    const page = await t.app.inject({ method: 'GET', url: reader.manage });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('forwarded@example.com');
    expect(page.body).toContain('Email me a link to download or erase my data');
    // No data in reach: no download, no erase form, none of the consent evidence.
    expect(page.body).not.toMatch(/data\.json|\/erase|203\.0\.113\.7|SecretBrowser/);
    const json = await t.app.inject({ method: 'GET', url: reader.manage, headers: JSON_ACCEPT });
    expect(json.json()).toEqual({
      email: 'forwarded@example.com',
      name: 'Dora Data',
      status: 'active',
      createdAt: expect.any(String),
      confirmedAt: expect.any(String),
    });
    expect(await row(reader.id)).toEqual(before);

    // The page's unsubscribe button posts to the one-click address: it takes effect at once.
    const action = /<form method="post" action="(\/unsubscribe\/[^"]+)"><button type="submit" class="secondary">Unsubscribe<\/button>/.exec(page.body)?.[1];
    expect(action).toBeDefined();
    expect((await t.app.inject({ method: 'POST', url: action!, headers: FORM, payload: '' })).statusCode).toBe(200);
    expect((await row(reader.id)).status).toBe('unsubscribed');
  });

  it.each<[string, string, (manage: string) => InjectOptions]>([
    ['GET data.json', 'download', (m) => ({ method: 'GET', url: `${m}/data.json` })],
    ['POST erase with its checkbox ticked', 'erase', (m) => ({ method: 'POST', url: `${m}/erase`, headers: FORM, payload: 'confirm=yes' })],
  ])('%s under it answers 403 asking for a fresh link, reads nothing and erases nothing', async (_what, name, request) => {
    const reader = await readerWithEvidence(`old-${name}-link@example.com`);
    const page = await t.app.inject(request(reader.manage));
    expect(page.statusCode).toBe(403);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.body).toMatch(/role="alert">Downloading or erasing your data needs a fresh link/);
    expect(page.body).toContain(`href="${reader.manage}"`);
    expect(page.body).not.toMatch(/203\.0\.113\.7|SecretBrowser/);

    const req = request(reader.manage);
    const json = await t.app.inject({ ...req, headers: { ...(req.headers as Record<string, string> | undefined), ...JSON_ACCEPT } });
    expect(json.statusCode).toBe(403);
    expect(json.json()).toEqual({ error: { code: 'fresh_link_required', message: expect.stringMatching(/fresh link/) } });
    expect(await row(reader.id)).toMatchObject({ status: 'active', consent_ip: '203.0.113.7' });
  });
});

describe('the emailed data link', () => {
  it("goes to the reader's own address only and opens their data: page, JSON and download", async () => {
    const reader = await readerWithEvidence('Dora.Data@example.org');
    const { path, mail } = await mailedDataLink(reader);
    expect(mail.recipients).toEqual(['Dora.Data@example.org']);
    expect(mail.parsed.html).toContain(`href="http://broadside.test${path}"`);
    expect(mail.parsed.text).toContain('works for 60 minutes');

    const before = await row(reader.id);
    const page = await t.app.inject({ method: 'GET', url: path });
    expect(page.statusCode).toBe(200);
    expect(page.headers['cache-control']).toBe('no-store');
    expect(page.body).toContain('Dora.Data@example.org');
    expect(page.body).toContain(`href="${path}/data.json"`);
    expect(page.body).toMatch(new RegExp(`<form method="post" action="${path}/erase"`));

    const json = await t.app.inject({ method: 'GET', url: path, headers: JSON_ACCEPT });
    expect(json.json()).toMatchObject({
      subscriber: { email: 'Dora.Data@example.org', status: 'active' },
      consent: { ip: '203.0.113.7', userAgent: 'SecretBrowser/9.9' },
    });
    const download = await t.app.inject({ method: 'GET', url: `${path}/data.json` });
    expect(download.statusCode).toBe(200);
    expect(download.headers['content-disposition']).toBe('attachment; filename="my-subscription.json"');
    expect(download.json()).toMatchObject({ consent: { ip: '203.0.113.7' } });
    // Reading changes nothing.
    expect(await row(reader.id)).toEqual(before);
  });

  it('expires after DATA_LINK_TTL_MINUTES (60 by default)', async () => {
    const reader = await readerWithEvidence('expiring@example.org');
    const asked = Date.now();
    const { path } = await mailedDataLink(reader);
    const token = path.slice('/data/'.length);
    const expiresAt = parseInt(token.split('.')[2]!, 36) * 1000;
    expect(expiresAt).toBeGreaterThanOrEqual(asked + 60 * 60_000 - 1000);
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 60 * 60_000);
    expect(t.c.tokens.verify('data', token, new Date(expiresAt - 1000))).toBe(reader.id);
    expect(() => t.c.tokens.verify('data', token, new Date(expiresAt + 1000))).toThrow(TokenError);
  });

  it('refuses to erase without the confirmation checkbox: 400 with the error on the page or in JSON, nothing erased', async () => {
    const reader = await readerWithEvidence('careful@example.org');
    const { path } = await mailedDataLink(reader);
    for (const payload of ['', 'confirm=no', 'confirm=']) {
      const page = await t.app.inject({ method: 'POST', url: `${path}/erase`, headers: FORM, payload });
      expect(page.statusCode).toBe(400);
      expect(page.headers['content-type']).toMatch(/^text\/html/);
      expect(page.body).toContain('role="alert"');
      expect(page.body).toContain('Tick the box to confirm');
      expect(page.body).toMatch(/id="confirm" name="confirm" value="yes" required aria-invalid="true" aria-describedby="confirm-error"/);
    }
    for (const payload of [{}, { confirm: false }, { confirm: 'no' }]) {
      const json = await t.app.inject({ method: 'POST', url: `${path}/erase`, payload });
      expect(json.statusCode).toBe(400);
      expect(json.json()).toEqual({ error: { code: 'confirmation_required', message: expect.stringMatching(/Tick the box/) } });
    }
    const bare = await t.app.inject({ method: 'POST', url: `${path}/erase`, headers: JSON_ACCEPT });
    expect(bare.statusCode).toBe(400);
    expect(await row(reader.id)).toMatchObject({ status: 'active' });

    const erased = await t.app.inject({ method: 'POST', url: `${path}/erase`, payload: { confirm: true } });
    expect(erased.statusCode).toBe(200);
    expect(erased.json()).toEqual({ status: 'erased' });
    expect(await row(reader.id)).toBeUndefined();
  });

  it('erases as before: the row goes, bounce rows lose the address and diagnostic, raw reports go, a hash stays', async () => {
    const reader = await readerWithEvidence('scrub.me@example.org', 'unsubscribed');
    const report = (
      await t.c.pool.query(
        `INSERT INTO inbound_reports (rcpt_to, kind, size, sha256, raw) VALUES ('bounces@broadside.test', 'dsn', 3, sha256('abc'), 'abc') RETURNING id`,
      )
    ).rows[0].id;
    await t.c.pool.query(
      `INSERT INTO bounces (type, source, subscriber_id, matched_by, recipient, diagnostic, report_id)
       VALUES ('soft', 'dsn', $1, 'verp', 'scrub.me@example.org', '452 4.2.2 scrub.me@example.org mailbox full', $2)`,
      [reader.id, report],
    );
    const { path } = await mailedDataLink(reader);
    const res = await t.app.inject({ method: 'POST', url: `${path}/erase`, headers: FORM, payload: 'confirm=yes' });
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('Your data is erased');
    expect(await row(reader.id)).toBeUndefined();
    expect((await t.c.pool.query('SELECT recipient, diagnostic, report_id FROM bounces WHERE subscriber_id = $1', [reader.id])).rows).toEqual([
      { recipient: null, diagnostic: null, report_id: null },
    ]);
    expect((await t.c.pool.query('SELECT count(*)::int AS n FROM inbound_reports WHERE id = $1', [report])).rows[0].n).toBe(0);
    expect((await t.c.pool.query(`SELECT reason FROM suppressions WHERE email_hash = sha256(convert_to('scrub.me@example.org', 'UTF8'))`)).rows).toEqual([
      { reason: 'erased (was unsubscribed)' },
    ]);
    // The link has nothing left to show.
    expect((await t.app.inject({ method: 'GET', url: path })).statusCode).toBe(404);
  });
});

describe('asking for a data link', () => {
  it(`mails at most one link per reader every ${DATA_LINK_RESEND_MINUTES} minutes, however often and however fast it is asked, with the same answer each time`, async () => {
    const reader = await readerWithEvidence('flooded@example.org');
    const ask = (json: boolean) => t.app.inject({ method: 'POST', url: `${reader.manage}/data-link`, headers: json ? JSON_ACCEPT : {} });
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => ask(i % 2 === 0)));
    for (const [i, a] of answers.entries()) {
      if (i % 2 === 0) expect([a.statusCode, a.json()]).toEqual([202, { status: 'requested' }]);
      else expect(a.statusCode).toBe(200);
    }
    // The page is the same whether this request mailed a link or not.
    expect(new Set(answers.filter((_, i) => i % 2 === 1).map((a) => a.body)).size).toBe(1);
    await until('the data-link mail', () => dataLinkMails(reader.email).length === 1);
    const later = await ask(false);
    expect(later.body).toBe(answers[1]!.body);
    expect(await dataLinkJobs(reader.id)).toHaveLength(1);

    // Once the window has passed, the next request mails a new link.
    await t.c.pool.query(`UPDATE subscribers SET data_link_sent_at = now() - interval '${DATA_LINK_RESEND_MINUTES + 1} minutes' WHERE id = $1`, [reader.id]);
    expect((await ask(true)).statusCode).toBe(202);
    await until('the second data-link mail', () => dataLinkMails(reader.email).length === 2);
    expect(await dataLinkJobs(reader.id)).toHaveLength(2);
  });

  it('answers the same for a bounced reader, whose address gets no mail', async () => {
    const reader = await readerWithEvidence('bounced.reader@example.org', 'bounced');
    const other = await readerWithEvidence('other.reader@example.org');
    const [bounced, active] = await Promise.all([
      t.app.inject({ method: 'POST', url: `${reader.manage}/data-link` }),
      t.app.inject({ method: 'POST', url: `${other.manage}/data-link` }),
    ]);
    expect([bounced.statusCode, bounced.body]).toEqual([active.statusCode, active.body]);
    await until("the other reader's mail", () => dataLinkMails(other.email).length === 1);
    expect(await dataLinkJobs(reader.id)).toEqual([]);
    expect(dataLinkMails(reader.email)).toEqual([]);
  });
});
