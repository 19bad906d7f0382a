import { describe, expect, it } from '@jest/globals';
import { useTestContext, linkIn, pathOf } from '../support/context.js';
import { headerOf } from '../support/smtp-sink.js';

const t = useTestContext({ worker: true });

const count = async (sql: string, params: unknown[] = []) => Number((await t.c.pool.query(sql, params)).rows[0].count);

describe('a reader, from sign-up to erasure', () => {
  it('signs up by form, confirms by button, gets a welcome, unsubscribes in one click, downloads and erases their data through an emailed link', async () => {
    const signup = await t.app.inject({
      method: 'POST',
      url: '/subscribe',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': 'JourneyTest/1.0' },
      payload: 'email=%20Ada.Lovelace%40Example.COM%20&name=Ada%20%3Cb%3ELovelace%3C%2Fb%3E',
    });
    expect(signup.statusCode).toBe(303);
    expect(signup.headers.location).toBe('/subscribe/check-inbox');

    const inbox = await t.app.inject({ method: 'GET', url: '/subscribe/check-inbox' });
    expect(inbox.statusCode).toBe(200);
    expect(inbox.body).toContain('Check your inbox');

    const { rows } = await t.c.pool.query('SELECT * FROM subscribers');
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      email: 'Ada.Lovelace@Example.COM',
      email_normalized: 'ada.lovelace@example.com',
      status: 'pending',
      consent_source: 'form',
      consent_user_agent: 'JourneyTest/1.0',
    });
    expect(rows[0].consent_ip).toBeTruthy();

    // The confirmation email: HTML and text, with a signed link to PUBLIC_URL/confirm/<token>.
    const confirmation = await t.smtp.waitFor((m) => m.recipients.some((r) => r.toLowerCase() === 'ada.lovelace@example.com'));
    expect(confirmation.parsed.subject).toBe('Confirm your subscription to The Test Letter');
    expect(confirmation.parsed.html).toContain('Confirm my subscription');
    expect(confirmation.parsed.html).toContain('Ada &lt;b&gt;Lovelace&lt;/b&gt;');
    expect(confirmation.parsed.html).not.toContain('<b>Lovelace</b>');
    const confirmUrl = linkIn(confirmation.parsed.text ?? '', '/confirm/');
    expect(confirmUrl.startsWith('http://broadside.test/confirm/')).toBe(true);
    expect(confirmation.parsed.html).toContain(`href="${confirmUrl}"`);

    // GET only shows a button (link scanners must not confirm anyone).
    const page = await t.app.inject({ method: 'GET', url: pathOf(confirmUrl) });
    expect(page.statusCode).toBe(200);
    expect(page.body).toMatch(/<form method="post" action="\/confirm\/[^"]+"><button/);
    expect(await count(`SELECT count(*) FROM subscribers WHERE status = 'pending'`)).toBe(1);

    const confirm = await t.app.inject({ method: 'POST', url: pathOf(confirmUrl), headers: { 'user-agent': 'Confirmer/2.0' } });
    expect(confirm.statusCode).toBe(200);
    expect(confirm.body).toContain('You are subscribed');
    const active = (await t.c.pool.query('SELECT * FROM subscribers')).rows[0];
    expect(active).toMatchObject({ status: 'active', confirm_user_agent: 'Confirmer/2.0' });
    expect(active.confirmed_at).toBeInstanceOf(Date);

    // The welcome email carries the unsubscribe and manage links and the RFC 8058 headers.
    const welcome = await t.smtp.waitFor((m) => m.parsed.subject === 'Welcome to The Test Letter');
    expect(welcome.recipients.map((r) => r.toLowerCase())).toEqual(['ada.lovelace@example.com']);
    const unsubscribeUrl = linkIn(welcome.parsed.text ?? '', '/unsubscribe/');
    const manageUrl = linkIn(welcome.parsed.text ?? '', '/manage/');
    expect(headerOf(welcome, 'list-unsubscribe')).toBe(`<${unsubscribeUrl}>`);
    expect(headerOf(welcome, 'list-unsubscribe-post')).toBe('List-Unsubscribe=One-Click');
    expect(welcome.parsed.html).toContain('1 Test Street, Testville');

    // Confirming twice sends no second welcome.
    const again = await t.app.inject({ method: 'POST', url: pathOf(confirmUrl) });
    expect(again.statusCode).toBe(200);
    expect(again.body).toContain('already subscribed');

    // One-click unsubscribe as a mailbox provider does it: POST, 200, no redirect, no cookie.
    const oneClick = await t.app.inject({
      method: 'POST',
      url: pathOf(unsubscribeUrl),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'List-Unsubscribe=One-Click',
    });
    expect(oneClick.statusCode).toBe(200);
    expect(oneClick.headers.location).toBeUndefined();
    expect(oneClick.headers['set-cookie']).toBeUndefined();
    expect((await t.c.pool.query('SELECT status, unsubscribed_at FROM subscribers')).rows[0]).toMatchObject({ status: 'unsubscribed' });

    // The footer's manage page shows the status, but the data only through a link mailed to the reader.
    const manage = await t.app.inject({ method: 'GET', url: pathOf(manageUrl) });
    expect(manage.statusCode).toBe(200);
    expect(manage.body).toContain('unsubscribed');
    expect(manage.body).toContain('Ada.Lovelace@Example.COM');
    expect((await t.app.inject({ method: 'GET', url: `${pathOf(manageUrl)}/data.json` })).statusCode).toBe(403);
    const ask = await t.app.inject({ method: 'POST', url: `${pathOf(manageUrl)}/data-link` });
    expect(ask.statusCode).toBe(200);
    expect(ask.body).toContain('Check your inbox');
    const dataMail = await t.smtp.waitFor((m) => m.parsed.subject?.startsWith('Your data at The Test Letter') ?? false);
    expect(dataMail.recipients.map((r) => r.toLowerCase())).toEqual(['ada.lovelace@example.com']);
    const dataUrl = linkIn(dataMail.parsed.text ?? '', '/data/');

    // The emailed page: the data download is JSON with the consent evidence.
    const data = await t.app.inject({ method: 'GET', url: `${pathOf(dataUrl)}/data.json` });
    expect(data.statusCode).toBe(200);
    expect(data.headers['content-disposition']).toContain('attachment');
    expect(data.json()).toMatchObject({
      subscriber: { email: 'Ada.Lovelace@Example.COM', name: 'Ada <b>Lovelace</b>', status: 'unsubscribed' },
      consent: { source: 'form', userAgent: 'JourneyTest/1.0', confirmedWithUserAgent: 'Confirmer/2.0' },
    });

    // Erasure deletes the row and leaves only a hash, which blocks a later import.
    const erase = await t.app.inject({
      method: 'POST',
      url: `${pathOf(dataUrl)}/erase`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'confirm=yes',
    });
    expect(erase.statusCode).toBe(200);
    expect(await count('SELECT count(*) FROM subscribers')).toBe(0);
    const supp = (await t.c.pool.query("SELECT encode(email_hash, 'hex') AS h, reason FROM suppressions")).rows;
    expect(supp).toEqual([{ h: expect.stringMatching(/^[0-9a-f]{64}$/), reason: 'erased (was unsubscribed)' }]);
    expect(JSON.stringify(supp)).not.toContain('ada');

    const reimport = await t.app.inject({ method: 'POST', url: '/api/subscribers', headers: t.auth, payload: { email: 'ADA.lovelace@example.com' } });
    expect(reimport.statusCode).toBe(409);
    expect(reimport.json().error.code).toBe('suppressed');
    expect(await count('SELECT count(*) FROM subscribers')).toBe(0);

    // Old links now lead to a clear 4xx page, not a 500.
    const gone = await t.app.inject({ method: 'GET', url: pathOf(manageUrl) });
    expect(gone.statusCode).toBe(404);
    expect(gone.headers['content-type']).toContain('text/html');
  });

  it('answers JSON sign-ups with 202 pending, the same for new, pending and active addresses, and mails only when it should', async () => {
    const send = () => t.app.inject({ method: 'POST', url: '/subscribe', payload: { email: 'grace@example.org', name: 'Grace' } });
    const first = await send();
    expect(first.statusCode).toBe(202);
    expect(first.json()).toEqual({ status: 'pending' });
    await t.smtp.waitFor((m) => m.recipients.includes('grace@example.org'));

    // Pending again within ten minutes: same answer, no second confirmation.
    const second = await send();
    expect(second.statusCode).toBe(202);
    expect(second.json()).toEqual({ status: 'pending' });
    const { rows } = await t.c.pool.query(`SELECT id FROM subscribers WHERE email_normalized = 'grace@example.org'`);
    expect(await t.c.queues.readerMail.getJobCountByTypes('waiting', 'active', 'delayed', 'completed')).toBeGreaterThan(0);
    const jobs = await t.c.queues.readerMail.getJobs(['waiting', 'active', 'delayed', 'completed']);
    expect(jobs.filter((j) => j.data.subscriberId === rows[0].id)).toHaveLength(1);

    // After the window, a pending address gets a new confirmation.
    await t.c.pool.query(`UPDATE subscribers SET confirmation_sent_at = now() - interval '11 minutes' WHERE id = $1`, [rows[0].id]);
    expect((await send()).statusCode).toBe(202);
    const after = await t.c.queues.readerMail.getJobs(['waiting', 'active', 'delayed', 'completed']);
    expect(after.filter((j) => j.data.subscriberId === rows[0].id)).toHaveLength(2);

    // Active: same answer, no job at all.
    await t.c.pool.query(`UPDATE subscribers SET status = 'active', confirmation_sent_at = now() - interval '1 day' WHERE id = $1`, [rows[0].id]);
    const active = await send();
    expect(active.statusCode).toBe(202);
    expect(active.json()).toEqual({ status: 'pending' });
    const final = await t.c.queues.readerMail.getJobs(['waiting', 'active', 'delayed', 'completed']);
    expect(final.filter((j) => j.data.subscriberId === rows[0].id)).toHaveLength(2);
  });

  it('silently drops a sign-up whose honeypot is filled, by form and by JSON alike', async () => {
    const form = await t.app.inject({
      method: 'POST',
      url: '/subscribe',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'email=bot1%40example.net&website=http%3A%2F%2Fspam',
    });
    expect(form.statusCode).toBe(303);
    const json = await t.app.inject({ method: 'POST', url: '/subscribe', payload: { email: 'bot2@example.net', website: 'x' } });
    expect(json.statusCode).toBe(202);
    expect(await count(`SELECT count(*) FROM subscribers WHERE email_normalized LIKE 'bot%'`)).toBe(0);
  });
});
