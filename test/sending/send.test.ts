import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { SMTPServer } from 'smtp-server';
import { escapeHtml } from '../../src/web/escape.js';
import { createTestContext, pathOf, useTestContext, type TestContext } from '../support/context.js';
import { copiesOf, editor, until, workersIdle, type Issue, type Progress } from '../support/editor.js';
import { addReaders, type NewReader, type Reader } from '../support/readers.js';
import { headerOf, type ReceivedMail } from '../support/smtp-sink.js';

// Everything a subject line can trip over: &, quotes, |, <, emoji, em dash, non-ASCII.
const SUBJECT = `Tom & Jerry's "best" | <50 ms 📬 — café Zürich [final]`;

const MARKDOWN = [
  'Hello and welcome: **this week** in brief, with a = sign and a [link](https://example.com/a?b=1&c=2).',
  '',
  '## Markets & "money" | 📈',
  '',
  'First section. Zürich «notes» — and a long line that goes on and on well past seventy-six characters so that quoted-printable has to wrap it somewhere.',
  '',
  '## People moves',
  '',
  '- Someone went somewhere.',
  '- Someone else stayed put.',
].join('\n');

function helpers(t: TestContext) {
  const e = editor(t);
  return {
    ...e,
    /** A draft with the awkward subject and Markdown above, or the ones given. */
    createIssue: (subject = SUBJECT, markdown = MARKDOWN) => e.createIssue({ subject, markdown }),
    copiesOf: (sendId: number) => copiesOf(t, sendId),
    async messagesOf(sendId: number): Promise<{ id: number; subscriber_id: number; status: string; attempts: number; smtp_response: string | null }[]> {
      const { rows } = await t.c.pool.query('SELECT id, subscriber_id, status::text, attempts, smtp_response FROM messages WHERE send_id = $1 ORDER BY id', [
        sendId,
      ]);
      return rows;
    },
    async subscriber(id: number): Promise<{ status: string; bounced_at: Date | null; unsubscribed_at: Date | null }> {
      return (await t.c.pool.query('SELECT status::text, bounced_at, unsubscribed_at FROM subscribers WHERE id = $1', [id])).rows[0];
    },
  };
}

/** The value between < and > of a List-Unsubscribe header. */
const unsubscribeUrlOf = (m: ReceivedMail) => /^<([^<>]+)>$/.exec(headerOf(m, 'list-unsubscribe') ?? '')?.[1];

const replaceAll = (s: string, pairs: [string, string][]) => pairs.reduce((acc, [from, to]) => acc.split(from).join(to), s);

const oneClick = (t: TestContext, url: string) =>
  t.app.inject({
    method: 'POST',
    url: pathOf(url),
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: 'List-Unsubscribe=One-Click',
  });

describe('a send to 200 active readers', () => {
  const t = useTestContext({ worker: true });
  const h = helpers(t);

  // Awkward names: quotes, non-ASCII, angle brackets, commas; and some readers without a name.
  const names = [`Zoë "Zed" O'Brien`, 'Ana <b>María</b> & Co', '"Quoted" Person, Esq.', null, 'Łukasz Żółć — 日本', 'Plain Name'];
  const activeInput: NewReader[] = Array.from({ length: 200 }, (_, i) => ({
    email: `reader${String(i).padStart(3, '0')}@example.com`,
    name: i < names.length ? names[i] : i % 7 === 0 ? null : `Reader ${i}`,
  }));
  const othersInput: NewReader[] = [
    ...['p1', 'p2', 'p3'].map((x) => ({ email: `pending-${x}@example.com`, status: 'pending' as const })),
    ...['u1', 'u2', 'u3'].map((x) => ({ email: `unsub-${x}@example.com`, status: 'unsubscribed' as const })),
    ...['b1', 'b2'].map((x) => ({ email: `bounced-${x}@example.com`, status: 'bounced' as const })),
  ];
  let active: Reader[];
  let others: Reader[];
  let issue: Issue;
  let sendId: number;

  beforeAll(async () => {
    active = await addReaders(t, activeInput);
    others = await addReaders(t, othersInput);
    issue = await h.createIssue();
  });

  it('mails every active reader exactly once, nobody else, and reports it done', async () => {
    // Not public before the send.
    const before = await t.app.inject({ method: 'GET', url: `/issues/${issue.slug}`, headers: { accept: 'application/json' } });
    expect(before.statusCode).toBe(404);

    const first = await h.trigger(issue.id);
    expect(first).toMatchObject({ issueId: issue.id, status: 'sending' });
    sendId = first.id;

    // Triggering again while it runs, once and five times at once, returns the same send.
    const again = await h.trigger(issue.id);
    expect(again.id).toBe(sendId);
    const concurrent = await Promise.all(Array.from({ length: 5 }, () => h.api('POST', `/api/issues/${issue.id}/send`, {})));
    expect(concurrent.map((r) => [r.statusCode, (r.json() as Progress).id])).toEqual(Array.from({ length: 5 }, () => [202, sendId]));

    const done = await h.waitForStatus(issue.id, 'done');
    expect(done).toMatchObject({
      id: sendId,
      total: 200,
      submitted: 200,
      sent: 200,
      queued: 0,
      sending: 0,
      failed: 0,
      bounced: 0,
      cancelled: 0,
      fanoutDone: true,
      etaSeconds: null,
    });
    expect(done.finishedAt).not.toBeNull();

    // One message row per active reader, none for the others.
    const messages = await h.messagesOf(sendId);
    expect(messages.map((m) => m.subscriber_id).sort((a, b) => a - b)).toEqual(active.map((r) => r.id).sort((a, b) => a - b));
    expect(new Set(messages.map((m) => m.status))).toEqual(new Set(['submitted']));
    expect(messages.every((m) => m.attempts === 1 && /^250\b/.test(m.smtp_response ?? ''))).toBe(true);

    // The sink got one copy per active reader and none for the others.
    await workersIdle(t);
    const copies = h.copiesOf(sendId);
    const perRecipient = new Map<string, number>();
    for (const m of copies) for (const r of m.recipients) perRecipient.set(r, (perRecipient.get(r) ?? 0) + 1);
    expect(copies).toHaveLength(200);
    expect([...perRecipient.entries()].sort()).toEqual(active.map((r) => [r.email, 1]).sort());
    for (const o of others) expect(t.smtp.to(o.email)).toEqual([]);
    expect(t.smtp.messages).toHaveLength(200);

    // Triggering a finished send changes nothing.
    const late = await h.trigger(issue.id);
    expect(late).toMatchObject({ id: sendId, status: 'done', total: 200, submitted: 200 });
    await workersIdle(t);
    expect(t.smtp.messages).toHaveLength(200);
    expect(await h.messagesOf(sendId)).toHaveLength(200);
  });

  it('personalises each copy: the preview for that reader, their own unsubscribe link and headers', async () => {
    const previewHtml = (await h.api('GET', `/api/issues/${issue.id}/preview`)).body;
    const previewText = (await h.api('GET', `/api/issues/${issue.id}/preview?format=text`)).body;
    const sample = { greeting: 'Hi Sample Reader,', unsubscribe: 'http://broadside.test/unsubscribe/sample', manage: 'http://broadside.test/manage/sample' };
    // The substitutions below must have something to replace.
    for (const v of Object.values(sample)) {
      expect(previewHtml).toContain(escapeHtml(v));
      expect(previewText).toContain(v);
    }
    const messageIdOf = new Map((await h.messagesOf(sendId)).map((m) => [m.subscriber_id, m.id]));
    const seenMessageIds = new Set<string>();

    for (const reader of active) {
      const [mail] = h.copiesOf(sendId).filter((m) => m.recipients.includes(reader.email));
      expect(mail).toBeDefined();
      const m = mail!;
      expect(m.recipients).toEqual([reader.email]);
      // Without BOUNCE_DOMAIN the envelope sender is the MAIL_FROM address.
      expect(m.envelopeFrom).toBe('news@broadside.test');

      expect(m.parsed.subject).toBe(SUBJECT);
      expect(m.parsed.from?.value).toEqual([{ name: 'The Test Letter', address: 'news@broadside.test' }]);
      const to = m.parsed.to && !Array.isArray(m.parsed.to) ? m.parsed.to.value : undefined;
      expect(to).toEqual([{ address: reader.email, name: reader.name ?? '' }]);

      // Headers: one-click unsubscribe (RFC 8058), list and feedback ids, our message token.
      const unsubscribeUrl = unsubscribeUrlOf(m);
      expect(unsubscribeUrl).toMatch(/^http:\/\/broadside\.test\/unsubscribe\/[^/]+$/);
      expect(t.c.tokens.verify('unsubscribe', unsubscribeUrl!.split('/').pop()!)).toBe(reader.id);
      expect(headerOf(m, 'list-unsubscribe-post')).toBe('List-Unsubscribe=One-Click');
      expect(headerOf(m, 'list-id')).toBe('The Test Letter <the-test-letter.broadside.test>');
      expect(headerOf(m, 'feedback-id')).toBe(`issue${issue.id}:send${sendId}:newsletter:broadside`);
      const token = headerOf(m, 'x-broadside-message')!;
      expect(t.c.messageTokens.verify(token)).toBe(messageIdOf.get(reader.id));
      const messageId = headerOf(m, 'message-id')!;
      expect(messageId).toBe(`<${token}@broadside.test>`);
      expect(seenMessageIds.has(messageId)).toBe(false);
      seenMessageIds.add(messageId);
      // Header lines are plain ASCII on the wire.
      expect(m.raw.slice(0, m.raw.indexOf('\r\n\r\n'))).toMatch(/^[\x20-\x7e\r\n\t]*$/);

      // Both parts: the preview, with the sample reader's values replaced by this reader's.
      const mine: [string, string][] = [
        [sample.greeting, reader.name ? `Hi ${reader.name},` : 'Hi,'],
        [sample.unsubscribe, unsubscribeUrl!],
        [sample.manage, t.c.links.manage(reader.id)],
      ];
      expect(m.parsed.html).toBeTruthy();
      expect(m.parsed.text).toBeTruthy();
      expect(m.parsed.html).toBe(
        replaceAll(
          previewHtml,
          mine.map(([a, b]) => [escapeHtml(a), escapeHtml(b)]),
        ),
      );
      expect(m.parsed.text).toBe(replaceAll(previewText, mine));
      expect(m.parsed.html).toContain(`href="${escapeHtml(unsubscribeUrl!)}"`);
    }

    // The link really unsubscribes its reader, in one click, and only that reader.
    const chosen = [active[0]!, active[1]!, active[150]!];
    for (const reader of chosen) {
      const m = h.copiesOf(sendId).find((x) => x.recipients.includes(reader.email))!;
      const res = await oneClick(t, unsubscribeUrlOf(m)!);
      expect(res.statusCode).toBe(200);
      expect(res.headers.location).toBeUndefined();
      expect((await h.subscriber(reader.id)).status).toBe('unsubscribed');
    }
    const { rows } = await t.c.pool.query(`SELECT count(*)::int AS n FROM subscribers WHERE status = 'active'`);
    expect(rows[0].n).toBe(200 - chosen.length);
  });

  // Corrections of a sent issue (web version only) are tested in test/issues/revisions.test.ts.
  it('keeps the issue once its send is triggered: no DELETE, and it is in the archive', async () => {
    const del = await h.api('DELETE', `/api/issues/${issue.id}`);
    expect(del.statusCode).toBe(409);
    expect(del.json().error.code).toBe('not_draft');
    expect((await h.api('GET', `/api/issues/${issue.id}`)).json() as Issue).toMatchObject({ subject: SUBJECT, status: 'published' });

    const web = await t.app.inject({ method: 'GET', url: `/issues/${issue.slug}`, headers: { accept: 'application/json' } });
    expect(web.statusCode).toBe(200);
    expect(web.json()).toMatchObject({ slug: issue.slug, subject: SUBJECT });
    const archive = await t.app.inject({ method: 'GET', url: '/issues', headers: { accept: 'application/json' } });
    expect((archive.json() as { items: { slug: string }[] }).items.map((i) => i.slug)).toContain(issue.slug);
  });

  it('freezes the issue as soon as the trigger answers, while the send is still running', async () => {
    // A second issue, so that the checks run against a send in progress.
    const second = await h.createIssue('Second issue', 'Just a line.\n\n## One\n\nText.');
    const p = await h.trigger(second.id);
    expect(p.status).toBe('sending');
    expect((await h.api('PATCH', `/api/issues/${second.id}`, { markdown: 'changed' })).statusCode).toBe(409);
    expect((await h.api('DELETE', `/api/issues/${second.id}`)).statusCode).toBe(409);
    const web = await t.app.inject({ method: 'GET', url: `/issues/${second.slug}`, headers: { accept: 'application/json' } });
    expect(web.statusCode).toBe(200);
    await h.waitForStatus(second.id, 'done');
    await workersIdle(t);
  });

  it('answers a trigger that races the first trigger of the same issue with 202 and that send (not 404)', async () => {
    const raced = await h.createIssue('Raced issue', 'Text.');
    const blocker = await t.c.pool.connect();
    let firstId: number;
    try {
      // The first trigger, held open in a transaction: far in the future, so nothing is sent.
      await blocker.query('BEGIN');
      firstId = (
        await blocker.query(`INSERT INTO sends (issue_id, status, scheduled_at) VALUES ($1, 'scheduled', now() + interval '1 day') RETURNING id`, [raced.id])
      ).rows[0].id;
      const second = h.api('POST', `/api/issues/${raced.id}/send`, {});
      await until('the second trigger to wait for the first', async () => {
        const { rows } = await t.c.pool.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO sends%'`,
        );
        return rows[0].n > 0;
      });
      await blocker.query('COMMIT');
      const res = await second;
      expect([res.statusCode, res.body]).toEqual([202, expect.any(String)]);
      expect((res.json() as Progress).id).toBe(firstId);
    } finally {
      await blocker.query('ROLLBACK').catch(() => undefined);
      blocker.release();
      await h.control(raced.id, 'cancel');
      await workersIdle(t);
    }
  });
});

describe('one reader at a time: bounces, retries, leavers and latecomers', () => {
  const t = useTestContext({
    worker: true,
    env: { DELIVERY_ATTEMPTS: '2', RETRY_DELAY_SECONDS: '1', SENDING_TIMEOUT_SECONDS: '3' },
  });
  const h = helpers(t);
  /** Every RCPT TO the relay saw, in order. */
  let rcpt: string[] = [];
  let regulars: Reader[];

  const rcptTo = (address: string) => rcpt.filter((a) => a === address).length;
  const relayRules = (rules: (address: string) => { code: number; message: string } | undefined) => {
    t.smtp.rejectRecipient = (address) => {
      rcpt.push(address);
      return rules(address);
    };
  };

  beforeAll(async () => {
    regulars = await addReaders(t, [{ email: 'one@example.com', name: 'One' }, { email: 'two@example.com' }, { email: 'three@example.com', name: 'Three' }]);
  });
  afterEach(() => {
    rcpt = [];
    t.smtp.rejectRecipient = () => undefined;
  });

  it('hard-bounces a reader the relay refuses with 550 5.1.1: tried once, suppressed, left out of the next send', async () => {
    const [gone] = await addReaders(t, [{ email: 'nosuchuser@example.com', name: 'Nobody' }]);
    relayRules((a) => (a === gone!.email ? { code: 550, message: '5.1.1 no such user' } : undefined));
    const issue = await h.createIssue('Bounce issue', 'Text.');
    const { id: sendId } = await h.trigger(issue.id);
    const done = await h.waitForStatus(issue.id, 'done');
    expect(done).toMatchObject({ total: regulars.length + 1, submitted: regulars.length, bounced: 1, failed: 0, queued: 0, sending: 0 });

    const message = (await h.messagesOf(sendId)).find((m) => m.subscriber_id === gone!.id)!;
    expect(message.status).toBe('bounced');
    expect(message.attempts).toBe(1);
    expect(message.smtp_response).toMatch(/^550\b.*5\.1\.1.*no such user/);
    expect(rcptTo(gone!.email)).toBe(1);
    expect(t.smtp.to(gone!.email)).toEqual([]);
    const sub = await h.subscriber(gone!.id);
    expect(sub.status).toBe('bounced');
    expect(sub.bounced_at).toBeInstanceOf(Date);
    // Recorded as a bounce, with the relay's own words.
    const { rows: bounces } = await t.c.pool.query('SELECT * FROM bounces WHERE message_id = $1', [message.id]);
    expect(bounces).toEqual([
      expect.objectContaining({
        type: 'hard',
        source: 'smtp',
        matched_by: 'submission',
        subscriber_id: gone!.id,
        send_id: sendId,
        status: '5.1.1',
        diagnostic: expect.stringMatching(/^550\b.*no such user/),
        recipient: gone!.email,
      }),
    ]);
    await workersIdle(t);

    // The next issue's audience no longer has them: no message, no attempt.
    rcpt = [];
    const next = await h.createIssue('After the bounce', 'Text.');
    const { id: nextSendId } = await h.trigger(next.id);
    expect(await h.waitForStatus(next.id, 'done')).toMatchObject({ total: regulars.length, submitted: regulars.length, bounced: 0 });
    expect((await h.messagesOf(nextSendId)).map((m) => m.subscriber_id)).not.toContain(gone!.id);
    expect(rcptTo(gone!.email)).toBe(0);
    await workersIdle(t);
  });

  it('retries a reader refused with 451 4.3.0 DELIVERY_ATTEMPTS times, then marks the message failed; the reader stays active', async () => {
    const [grey] = await addReaders(t, [{ email: 'greylisted@example.com' }]);
    relayRules((a) => (a === grey!.email ? { code: 451, message: '4.3.0 try again later' } : undefined));
    const issue = await h.createIssue('Greylist issue', 'Text.');
    const { id: sendId } = await h.trigger(issue.id);
    const done = await h.waitForStatus(issue.id, 'done');
    expect(done).toMatchObject({ failed: 1, bounced: 0, queued: 0, sending: 0, submitted: done.total - 1 });

    const message = (await h.messagesOf(sendId)).find((m) => m.subscriber_id === grey!.id)!;
    expect(message.status).toBe('failed');
    expect(message.attempts).toBe(2);
    expect(message.smtp_response).toMatch(/^451\b/);
    expect(rcptTo(grey!.email)).toBe(2);
    expect(t.smtp.to(grey!.email)).toEqual([]);
    expect((await h.subscriber(grey!.id)).status).toBe('active');
    // One soft bounce for the message (not one per attempt), counted against the reader.
    const { rows: bounces } = await t.c.pool.query('SELECT type::text, source::text, status, diagnostic FROM bounces WHERE message_id = $1', [message.id]);
    expect(bounces).toEqual([{ type: 'soft', source: 'smtp', status: '4.3.0', diagnostic: expect.stringMatching(/^451\b/) }]);
    const {
      rows: [reader],
    } = await t.c.pool.query('SELECT soft_bounces FROM subscribers WHERE id = $1', [grey!.id]);
    expect(reader.soft_bounces).toHaveLength(1);
    await workersIdle(t);

    // A later submission that draws no bounce resets the count: the next submission (or the
    // next soft bounce) finds it went through.
    rcpt = [];
    t.smtp.rejectRecipient = () => undefined;
    const probe = async () => (await t.c.pool.query('SELECT status::text, soft_bounces, soft_bounce_probe FROM subscribers WHERE id = $1', [grey!.id])).rows[0];
    const next = await h.createIssue('After the greylisting', 'Text.');
    const { id: nextSendId } = await h.trigger(next.id);
    await h.waitForStatus(next.id, 'done');
    const nextMessage = (await h.messagesOf(nextSendId)).find((m) => m.subscriber_id === grey!.id)!;
    expect(await probe()).toEqual({ status: 'active', soft_bounces: [expect.any(Date)], soft_bounce_probe: nextMessage.id });
    await workersIdle(t);
    const third = await h.createIssue('Greylisting over', 'Text.');
    await h.trigger(third.id);
    await h.waitForStatus(third.id, 'done');
    expect(await probe()).toEqual({ status: 'active', soft_bounces: null, soft_bounce_probe: null });
    await workersIdle(t);
  });

  it('suppresses a reader at their third soft bounce within the window (SOFT_BOUNCE_LIMIT)', async () => {
    const [flaky] = await addReaders(t, [{ email: 'full-mailbox@example.com' }]);
    // Two soft bounces already this month.
    await t.c.pool.query(`UPDATE subscribers SET soft_bounces = ARRAY[now() - interval '3 days', now() - interval '10 days'] WHERE id = $1`, [flaky!.id]);
    relayRules((a) => (a === flaky!.email ? { code: 452, message: '4.2.2 mailbox full' } : undefined));
    const issue = await h.createIssue('Third soft bounce', 'Text.');
    await h.trigger(issue.id);
    expect(await h.waitForStatus(issue.id, 'done')).toMatchObject({ failed: 1 });
    const sub = await h.subscriber(flaky!.id);
    expect(sub.status).toBe('bounced');
    expect(sub.bounced_at).toBeInstanceOf(Date);
    await workersIdle(t);
  });

  it('does not mail a reader who unsubscribes after the fan-out but before their delivery', async () => {
    const [leaver] = await addReaders(t, [{ email: 'leaving@example.com', name: 'Leaver' }]);
    // The relay defers the leaver's first attempt: their message then waits, queued, for its
    // retry, which is the window in which they unsubscribe (with the send paused meanwhile).
    let deferred!: () => void;
    const firstAttempt = new Promise<void>((resolve) => (deferred = resolve));
    relayRules((a) => {
      if (a !== leaver!.email || rcptTo(a) > 1) return undefined;
      deferred();
      return { code: 451, message: '4.3.0 try again later' };
    });
    const issue = await h.createIssue('Leaver issue', 'Text.');
    const { id: sendId } = await h.trigger(issue.id);
    await firstAttempt;

    const paused = await h.control(issue.id, 'pause');
    expect([paused.status, paused.body.status]).toEqual([200, 'paused']);
    expect((await h.messagesOf(sendId)).map((m) => m.subscriber_id)).toContain(leaver!.id);
    const unsub = await oneClick(t, t.c.links.unsubscribe(leaver!.id));
    expect(unsub.statusCode).toBe(200);
    const resumed = await h.control(issue.id, 'resume');
    expect([resumed.status, resumed.body.status]).toEqual([200, 'sending']);

    const done = await h.waitForStatus(issue.id, 'done');
    expect(done).toMatchObject({ cancelled: 1, failed: 0, bounced: 0, queued: 0, sending: 0 });
    const message = (await h.messagesOf(sendId)).find((m) => m.subscriber_id === leaver!.id)!;
    expect(message.status).toBe('cancelled');
    expect(t.smtp.to(leaver!.email)).toEqual([]);
    expect(rcptTo(leaver!.email)).toBe(1);
    expect((await h.subscriber(leaver!.id)).status).toBe('unsubscribed');
    await workersIdle(t);
  });

  it('freezes the audience at the trigger: readers confirmed or added after it get nothing', async () => {
    const [late] = await addReaders(t, [{ email: 'late-confirmer@example.com', name: 'Late', status: 'pending' }]);
    const issue = await h.createIssue('Frozen audience', 'Text.');

    // Hold the fan-out back (as a second fan-out of the same send would) so that it reads the
    // audience only after the latecomers are in: it takes this per-send advisory lock, finds it
    // held, and the supervisor adds its job again a second later.
    const { rows: seq } = await t.c.pool.query(`SELECT last_value + CASE WHEN is_called THEN 1 ELSE 0 END AS next FROM sends_id_seq`);
    const nextId = Number(seq[0].next);
    const holder = await t.c.pool.connect();
    let held = true;
    const letGo = async () => {
      if (!held) return;
      held = false;
      await holder.query('SELECT pg_advisory_unlock_all()').catch(() => undefined);
      holder.release();
    };
    try {
      for (let id = nextId; id < nextId + 5; id++) await holder.query("SELECT pg_advisory_lock(hashtext('broadside:fanout'), $1::int)", [id]);
      const { id: sendId } = await h.trigger(issue.id);
      expect(sendId).toBeGreaterThanOrEqual(nextId);
      expect(sendId).toBeLessThan(nextId + 5);

      // After the trigger: one pending reader confirms, one is added by the editor.
      const confirm = await t.app.inject({ method: 'POST', url: pathOf(t.c.links.confirm(late!.id)) });
      expect(confirm.statusCode).toBe(200);
      expect((await h.subscriber(late!.id)).status).toBe('active');
      const added = await h.api('POST', '/api/subscribers', { email: 'added-later@example.com', name: 'Added' });
      expect(added.statusCode).toBe(201);
      const addedId = (added.json() as { id: number }).id;
      // The fan-out has not written anything yet.
      expect(await h.messagesOf(sendId)).toEqual([]);

      await letGo();

      const done = await h.waitForStatus(issue.id, 'done');
      const ids = (await h.messagesOf(sendId)).map((m) => m.subscriber_id);
      expect(ids).not.toContain(late!.id);
      expect(ids).not.toContain(addedId);
      expect(done.total).toBe(ids.length);
      expect(ids).toEqual(expect.arrayContaining(regulars.map((r) => r.id)));
      await workersIdle(t);
      expect(h.copiesOf(sendId).filter((m) => m.recipients.some((r) => r === 'late-confirmer@example.com' || r === 'added-later@example.com'))).toEqual([]);
    } finally {
      await letGo();
    }
  });

  it('answers bad input: 400 for a scheduledAt that is not a date-time, 404 for unknown issues and sends, 401 without the token', async () => {
    const issue = await h.createIssue('Never sent', 'Text.');
    const before = t.smtp.messages.length;
    for (const scheduledAt of ['tomorrow', '2030-13-01T10:00:00Z', '2030-02-30T10:00:00Z', '', 1767225600000, null]) {
      const res = await h.api('POST', `/api/issues/${issue.id}/send`, { scheduledAt });
      expect([JSON.stringify(scheduledAt), res.statusCode]).toEqual([JSON.stringify(scheduledAt), 400]);
      expect(res.json().error).toMatchObject({ code: expect.any(String), message: expect.any(String) });
    }
    const unknown = await h.api('POST', '/api/issues/999999/send', {});
    expect([unknown.statusCode, unknown.json().error.code]).toEqual([404, 'not_found']);
    const noSend = await h.api('GET', `/api/issues/${issue.id}/send`);
    expect([noSend.statusCode, noSend.json().error.code]).toEqual([404, 'not_found']);
    for (const action of ['pause', 'resume', 'cancel'] as const) {
      expect((await h.control(issue.id, action)).status).toBe(404);
    }
    for (const [method, url] of [
      ['POST', `/api/issues/${issue.id}/send`],
      ['GET', `/api/issues/${issue.id}/send`],
      ['POST', `/api/issues/${issue.id}/send/pause`],
    ] as const) {
      const res = await t.app.inject({ method, url, payload: method === 'POST' ? {} : undefined });
      expect([url, res.statusCode, res.json().error.code]).toEqual([url, 401, 'unauthorized']);
    }
    // None of that created a send or mailed anyone; the issue is still a draft.
    expect((await t.c.pool.query('SELECT count(*)::int AS n FROM sends WHERE issue_id = $1', [issue.id])).rows[0].n).toBe(0);
    expect(((await h.api('GET', `/api/issues/${issue.id}`)).json() as Issue).status).toBe('draft');
    expect(t.smtp.messages.length).toBe(before);
  });
});

describe('with BOUNCE_DOMAIN (VERP)', () => {
  const t = useTestContext({ worker: true, env: { BOUNCE_DOMAIN: 'bounces.broadside.test' } });
  const h = helpers(t);

  it('uses bounces+<token>@BOUNCE_DOMAIN as the envelope sender, the token naming the message, and asks for header-only failure reports', async () => {
    const readers = await addReaders(t, [{ email: 'verp1@example.com' }, { email: 'verp2@example.org', name: 'Verp Two' }]);
    const issue = await h.createIssue();
    const { id: sendId } = await h.trigger(issue.id);
    await h.waitForStatus(issue.id, 'done');
    const messageIdOf = new Map((await h.messagesOf(sendId)).map((m) => [m.subscriber_id, m.id]));
    await workersIdle(t);
    for (const reader of readers) {
      const copies = h.copiesOf(sendId).filter((m) => m.recipients.includes(reader.email));
      expect(copies).toHaveLength(1);
      const m = copies[0]!;
      const verp = /^bounces\+(m[0-9a-z]+-[0-9a-f]{16})@bounces\.broadside\.test$/.exec(m.envelopeFrom);
      expect(verp).not.toBeNull();
      expect(t.c.messageTokens.verify(verp![1]!)).toBe(messageIdOf.get(reader.id));
      expect(headerOf(m, 'x-broadside-message')).toBe(verp![1]);
      // A report on failure only, with headers only, naming the message again as ENVID (RFC 3461).
      expect(m.dsn).toEqual({ ret: 'HDRS', envid: verp![1], notify: ['FAILURE'] });
      // The From header is still MAIL_FROM.
      expect(m.parsed.from?.value).toEqual([{ name: 'The Test Letter', address: 'news@broadside.test' }]);
    }
  });
});

describe('a relay that refuses the envelope sender', () => {
  // A relay of our own that refuses every MAIL FROM, as a relay does when the sender domain is
  // not verified or not allowed for this login (e.g. "550 5.7.1 sender rejected").
  let relay: SMTPServer;
  let t: TestContext;
  let mailFromSeen = 0;

  beforeAll(async () => {
    relay = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onMailFrom: (_address, _session, cb) => {
        mailFromSeen++;
        cb(Object.assign(new Error('5.7.1 sender address rejected: not owned by this account'), { responseCode: 550 }));
      },
      onData: (stream, _session, cb) => {
        stream.resume();
        stream.on('end', () => cb());
      },
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    const port = (relay.server.address() as AddressInfo).port;
    t = await createTestContext({ worker: true, env: { SMTP_URL: `smtp://127.0.0.1:${port}`, RETRY_DELAY_SECONDS: '1' } });
  });
  afterAll(async () => {
    await t?.close();
    await new Promise<void>((resolve) => relay.close(() => resolve()));
  });

  it('suppresses nobody when the relay refuses our sender: the readers stay active and their messages wait', async () => {
    const h = helpers(t);
    const readers = await addReaders(t, [{ email: 'r1@example.com' }, { email: 'r2@example.com' }, { email: 'r3@example.com' }]);
    const issue = await h.createIssue('Refused sender', 'Text.');
    const { id: sendId } = await h.trigger(issue.id);
    try {
      await until('every reader to have been tried', () => mailFromSeen >= readers.length);
      await until('no message to be in flight', async () => (await h.messagesOf(sendId)).every((m) => m.status !== 'sending'));
      expect((await h.messagesOf(sendId)).map((m) => m.status)).not.toContain('bounced');
      for (const r of readers) expect((await h.subscriber(r.id)).status).toBe('active');
    } finally {
      await h.control(issue.id, 'cancel');
    }
  });
});
