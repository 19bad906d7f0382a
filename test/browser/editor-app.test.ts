// The editor's web app at /editor in a real browser, found by roles and accessible names as an
// editor (or a screen reader) would find them, against a real server, Postgres and Redis.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { axeViolations, launchChromium, withContext as withBrowserContext } from '../support/browser.js';
import { createTestContext, TEST_TOKEN, type TestContext } from '../support/context.js';
import { requireBuiltEditorApp } from '../support/editor-app.js';
import { freePort } from '../support/free-port.js';
import { IMAGES } from '../support/images.js';
import { addActiveReaders } from '../support/readers.js';
import { until } from '../support/wait.js';

let t: TestContext;
let browser: Browser | undefined;
let base = '';

beforeAll(async () => {
  requireBuiltEditorApp();
  // PUBLIC_URL is this server, so the preview's uploaded images load from it.
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  // Every test signs in from 127.0.0.1: more than the default limit of sign-ins per address.
  t = await createTestContext({ env: { PUBLIC_URL: base, SIGNIN_RATE_LIMIT: '1000' } });
  await t.app.listen({ port, host: '127.0.0.1' });
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await t?.close();
});

type PageGlobals = { innerWidth: number; document: { documentElement: { scrollWidth: number } } };

/**
 * A browser context as an editor has it: the page's CSP enforced. Every console error (a CSP
 * refusal is one) and every uncaught exception fails the test.
 */
async function asEditor<T>(opts: Parameters<Browser['newContext']>[0], fn: (page: Page, ctx: BrowserContext) => Promise<T>): Promise<T> {
  return withBrowserContext(browser!, opts, async (ctx) => {
    const page = await ctx.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      // Provoked on purpose: the 401 of GET /api/session before signing in, the conflict test's
      // 409, the refusals tests provoke (400, 415), and the refused connection of the test
      // that takes the server away.
      if (m.type() === 'error' && !/status of (400|401|409|415)|ERR_CONNECTION_REFUSED/.test(m.text())) problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
    const result = await fn(page, ctx);
    expect(problems).toEqual([]);
    return result;
  });
}

async function signIn(page: Page, path = '/editor'): Promise<void> {
  await page.goto(`${base}${path}`);
  await page.getByLabel('API token').fill(TEST_TOKEN);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}

async function createIssue(subject: string, markdown = 'Intro.\n\n## First story\n\nSome text.'): Promise<{ id: number; revision: number }> {
  const res = await t.app.inject({ method: 'POST', url: '/api/issues', headers: t.auth, payload: { subject, markdown } });
  expect(res.statusCode).toBe(201);
  return res.json();
}

const dbIssue = async (id: number) => (await t.c.pool.query('SELECT subject, preheader, markdown FROM issues WHERE id = $1', [id])).rows[0];

async function noHorizontalScroll(page: Page): Promise<void> {
  const widths = await page.evaluate(() => {
    const { innerWidth, document } = globalThis as unknown as PageGlobals;
    return { viewport: innerWidth, document: document.documentElement.scrollWidth };
  });
  expect(widths.document).toBeLessThanOrEqual(widths.viewport);
}

describe('signing in and out', () => {
  it('asks for the API token, says in words when it is wrong, signs in, and signs out for good', async () => {
    await asEditor({}, async (page, ctx) => {
      await page.goto(`${base}/editor`);
      expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Sign in to the editor');
      const field = page.getByLabel('API token');
      await field.fill('not-the-token-0123456789');
      await page.getByRole('button', { name: 'Sign in' }).click();
      const error = page.getByRole('alert');
      await error.waitFor();
      expect(await error.textContent()).toContain('That is not the API token');
      // The error is tied to the field, so a screen reader reads it with the field.
      await expect(field.getAttribute('aria-invalid')).resolves.toBe('true');
      expect(await field.getAttribute('aria-describedby')).toContain('token-error');

      await field.fill(TEST_TOKEN);
      await field.press('Enter');
      await page.getByRole('heading', { level: 1, name: 'Issues' }).waitFor();
      const nav = page.getByRole('navigation', { name: 'Main' });
      for (const name of ['Issues', 'Readers', 'Bounces']) expect(await nav.getByRole('link', { name }).count()).toBe(1);

      const [cookie] = (await ctx.cookies()).filter((c) => c.name === 'broadside_session');
      expect(cookie).toEqual(expect.objectContaining({ httpOnly: true, sameSite: 'Strict', secure: false, path: '/' }));
      // The token itself is nowhere the page's scripts can read.
      expect(await page.evaluate(() => JSON.stringify({ ...(globalThis as unknown as { localStorage: Record<string, string> }).localStorage }))).not.toContain(
        TEST_TOKEN,
      );

      // Reloading keeps the session.
      await page.reload();
      await page.getByRole('heading', { level: 1, name: 'Issues' }).waitFor();

      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByLabel('API token').waitFor();
      // The cookie is gone, and the old one would not work either.
      expect((await ctx.cookies()).filter((c) => c.name === 'broadside_session')).toEqual([]);
      const old = await t.app.inject({ method: 'GET', url: '/api/issues', headers: { cookie: `broadside_session=${cookie!.value}` } });
      expect(old.statusCode).toBe(401);
    });
  });
});

describe('a session that ends while the app is open', () => {
  it('shows the sign-in again, saying so, and keeps what was typed', async () => {
    const { id } = await createIssue('Typed before the session ended');
    await asEditor({}, async (page, ctx) => {
      await signIn(page, `/editor/issues/${id}`);
      await page
        .getByRole('status')
        .filter({ hasText: /^Saved$/ })
        .waitFor();
      await ctx.clearCookies();
      await page.getByLabel('Markdown').fill('Still here after signing in again.');
      await page.getByText('Your session has ended').waitFor({ timeout: 10_000 });
      await page.getByLabel('API token').fill(TEST_TOKEN);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await until('the text is back and saved', async () => (await dbIssue(id)).markdown === 'Still here after signing in again.', 15_000);
      expect(await page.getByLabel('Markdown').inputValue()).toBe('Still here after signing in again.');
    });
  });
});

describe('the issues screen', () => {
  it('lists every issue by its subject with its state and a send in progress with its progress; New issue opens the writer', async () => {
    const draft = await createIssue('A draft about "quotes" & ampersands');
    const sending = await createIssue('The one being sent');
    // No worker runs in this test: the send stays in progress.
    const started = await t.app.inject({ method: 'POST', url: `/api/issues/${sending.id}/send`, headers: t.auth, payload: {} });
    expect(started.statusCode).toBe(202);

    await asEditor({}, async (page) => {
      await signIn(page, '/editor/issues');
      const draftLink = page.getByRole('link', { name: 'A draft about "quotes" & ampersands' });
      await draftLink.waitFor();
      const draftRow = page.getByRole('listitem').filter({ has: draftLink });
      expect(await draftRow.textContent()).toContain('Draft');
      const sendingRow = page.getByRole('listitem').filter({ has: page.getByRole('link', { name: 'The one being sent' }) });
      expect(await sendingRow.textContent()).toContain('Sending');
      await sendingRow.getByRole('progressbar', { name: 'Send progress' }).waitFor();
      expect(await sendingRow.textContent()).toMatch(/0 of \d+\+? submitted/);

      await draftLink.click();
      await page.waitForURL(`**/editor/issues/${draft.id}`);
      expect(await page.getByLabel('Subject').inputValue()).toBe('A draft about "quotes" & ampersands');
      await page.goBack();
      await page.getByRole('button', { name: 'New issue' }).click();
      await page.waitForURL('**/editor/issues/new');
      await page.getByLabel('Subject').waitFor();
    });
  });
});

describe('the writer', () => {
  it('saves a new draft by itself, shows "Saved", and previews it at both widths, as HTML and as text', async () => {
    await asEditor({ viewport: { width: 1280, height: 900 } }, async (page) => {
      await signIn(page, '/editor/issues/new');
      await page.getByLabel('Subject').fill('Week 12: the browser wrote this');
      await page.getByLabel('Preheader').fill('Three stories and a correction');
      await page.getByLabel('Markdown').fill('A standing intro.\n\n## The first story\n\nIt happened on Tuesday.');
      await page
        .getByRole('status')
        .filter({ hasText: /^Saved$/ })
        .waitFor({ timeout: 10_000 });
      await page.waitForURL(/\/editor\/issues\/\d+$/);
      const id = Number(page.url().split('/').pop());
      expect(await dbIssue(id)).toEqual({
        subject: 'Week 12: the browser wrote this',
        preheader: 'Three stories and a correction',
        markdown: 'A standing intro.\n\n## The first story\n\nIt happened on Tuesday.',
      });
      // The field kept focus and its text through the save that gave the issue its address.
      await expect(page.getByLabel('Markdown').evaluate((el) => el === (el.ownerDocument as { activeElement: unknown }).activeElement)).resolves.toBe(true);

      const frame = page.getByTitle('Preview');
      await until('the preview shows the issue', async () =>
        ((await frame.contentFrame().locator('body').textContent()) ?? '').includes('It happened on Tuesday.'),
      );
      expect(await frame.getAttribute('sandbox')).toBe('');
      const desktop = (await frame.boundingBox())!.width;
      expect(desktop).toBeGreaterThan(450);

      await page.getByRole('button', { name: 'Phone' }).click();
      await expect(page.getByRole('button', { name: 'Phone' }).getAttribute('aria-pressed')).resolves.toBe('true');
      await until('the frame is phone-wide', async () => Math.round((await frame.boundingBox())!.width) === 375);

      await page.getByRole('button', { name: 'Text' }).click();
      await until('the text part is shown', async () => {
        const text = (await frame.contentFrame().locator('body').textContent()) ?? '';
        return text.includes('THE FIRST STORY') || (text.includes('The first story') && !text.includes('<'));
      });
      const src = await frame.getAttribute('src');
      expect(src).toContain('format=text');
      await page.getByRole('button', { name: 'HTML' }).click();
      await page.getByRole('button', { name: 'Desktop' }).click();
      await until('the frame is wide again', async () => (await frame.boundingBox())!.width > 450);
    });
  });

  it('says plainly when another tab changed the issue, and does not overwrite it', async () => {
    const { id } = await createIssue('Two tabs');
    await asEditor({}, async (page) => {
      await signIn(page, `/editor/issues/${id}`);
      await page
        .getByRole('status')
        .filter({ hasText: /^Saved$/ })
        .waitFor();
      // Another tab (here: a script with the token) saves first.
      const other = await t.app.inject({
        method: 'PATCH',
        url: `/api/issues/${id}`,
        headers: t.auth,
        payload: { subject: 'Saved by the other tab', revision: 1 },
      });
      expect(other.statusCode).toBe(200);

      await page.getByLabel('Subject').fill('Typed in this tab');
      const status = page.getByRole('status').filter({ hasText: 'changed elsewhere' });
      await status.waitFor({ timeout: 10_000 });
      expect(await status.textContent()).toContain('Not saved');
      expect((await dbIssue(id)).subject).toBe('Saved by the other tab');
      // What was typed is still there, and kept in this browser.
      expect(await page.getByLabel('Subject').inputValue()).toBe('Typed in this tab');
    });
  });

  it('keeps what was typed in the browser while it cannot be saved, across a reload, and saves it once the server answers', async () => {
    const { id } = await createIssue('Kept locally');
    await asEditor({}, async (page) => {
      await signIn(page, `/editor/issues/${id}`);
      await page
        .getByRole('status')
        .filter({ hasText: /^Saved$/ })
        .waitFor();
      // The server cannot be reached for saves.
      await page.route(`**/api/issues/${id}`, (route) => (route.request().method() === 'PATCH' ? route.abort('connectionrefused') : route.continue()));
      await page.getByLabel('Markdown').fill('Written while the server was away.');
      await page.getByRole('status').filter({ hasText: 'cannot be reached' }).waitFor({ timeout: 10_000 });
      expect((await dbIssue(id)).markdown).not.toContain('server was away');

      await page.reload();
      await page.getByText('never saved').waitFor();
      expect(await page.getByLabel('Markdown').inputValue()).toBe('Written while the server was away.');

      await page.unroute(`**/api/issues/${id}`);
      await page
        .getByRole('status')
        .filter({ hasText: /^Saved$/ })
        .waitFor({ timeout: 15_000 });
      expect((await dbIssue(id)).markdown).toBe('Written while the server was away.');
    });
  });
});

describe('the writer, further', () => {
  it('uploads a chosen image and inserts it as Markdown, shows the outline and the inbox line, and restores an older revision', async () => {
    const { id } = await createIssue('With a picture', 'Intro.\n\n## Harbour news\n\nBoats.');
    await asEditor({ viewport: { width: 1280, height: 900 } }, async (page) => {
      await signIn(page, `/editor/issues/${id}`);
      await page
        .getByRole('status')
        .filter({ hasText: /^Saved$/ })
        .waitFor();
      // The outline and the inbox line follow the issue.
      const outline = page.getByRole('region', { name: 'Covered this week' });
      expect(await outline.getByRole('listitem').allTextContents()).toEqual(['Harbour news']);
      const inbox = page.locator('.inbox-line');
      expect(await inbox.textContent()).toContain('With a picture');
      // The sender, as MAIL_FROM says: the name, then the address.
      await until('the inbox line names the sender', async () => /The Test Letter <news@broadside\.test>/.test((await inbox.textContent()) ?? ''));

      const markdown = page.getByLabel('Markdown');
      await markdown.focus();
      await markdown.press('End');
      await page.getByLabel('Insert image').setInputFiles({ name: 'harbour.png', mimeType: 'image/png', buffer: IMAGES.png });
      await until('the image is inserted', async () => /!\[harbour\]\(http:\/\/[^)]+\/media\/[0-9a-f]{64}\.png\)/.test(await markdown.inputValue()));
      await page
        .getByRole('status')
        .filter({ hasText: /^Saved$/ })
        .waitFor({ timeout: 10_000 });
      expect((await dbIssue(id)).markdown).toMatch(/Boats\.!\[harbour\]\(.+\/media\/[0-9a-f]{64}\.png\)$/);

      // A file that only pretends to be an image is refused, in words, and nothing is inserted.
      await page
        .getByLabel('Insert image')
        .setInputFiles({ name: 'fake.png', mimeType: 'image/png', buffer: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>') });
      await page.getByRole('alert').filter({ hasText: 'fake.png could not be uploaded' }).waitFor();
      expect(await markdown.inputValue()).not.toContain('Uploading');

      await page.getByText('Revisions').click();
      await page.getByRole('button', { name: 'Restore revision 1' }).click();
      await until('revision 1 is back', async () => (await markdown.inputValue()) === 'Intro.\n\n## Harbour news\n\nBoats.');
      await page
        .getByRole('status')
        .filter({ hasText: /^Saved$/ })
        .waitFor({ timeout: 10_000 });
      expect((await dbIssue(id)).markdown).toBe('Intro.\n\n## Harbour news\n\nBoats.');
      const revisions = await t.app.inject({ method: 'GET', url: `/api/issues/${id}/revisions`, headers: t.auth });
      expect(revisions.json().items.map((r: { number: number }) => r.number)).toEqual([3, 2, 1]);
    });
  });
});

describe('test and send', () => {
  const sendOf = async (id: number) =>
    (await t.c.pool.query<{ scheduled_at: Date }>('SELECT scheduled_at FROM sends WHERE issue_id = $1', [id])).rows[0]?.scheduled_at ?? null;
  const pad = (n: number) => String(n).padStart(2, '0');
  /** A datetime-local value in the browser's zone (the test's Chromium runs in UTC unless told). */
  const local = (d: Date) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;

  it('sends a test copy, refuses a past time at the field, schedules after confirming the audience, reschedules, unschedules, then sends now', async () => {
    await addActiveReaders(t, ['ann@example.com', 'bob@example.com', 'cy@example.com']);
    const { id } = await createIssue('Ready to go');
    await asEditor({ viewport: { width: 1280, height: 900 }, timezoneId: 'UTC' }, async (page) => {
      await signIn(page, `/editor/issues/${id}`);
      await page
        .getByRole('status')
        .filter({ hasText: /^Saved$/ })
        .waitFor();

      await page.getByLabel('Test addresses').fill('editor@example.com');
      await page.getByRole('button', { name: 'Send test' }).click();
      await page.getByRole('list', { name: 'Test copies' }).getByText('editor@example.com: accepted by the relay').waitFor();
      const copy = await t.smtp.waitFor((m) => m.recipients.includes('editor@example.com'));
      expect(copy.parsed.subject).toBe('[Test] Ready to go');

      // A time in the past is refused where it was typed.
      const sendAt = page.getByLabel('Send at');
      await sendAt.fill(local(new Date(Date.now() - 3600_000)));
      await page.getByRole('button', { name: 'Schedule' }).click();
      await page.getByRole('alert').filter({ hasText: 'in the past' }).waitFor();
      expect(await sendOf(id)).toBeNull();

      // The dialog states the audience; Escape closes it and nothing is sent.
      const tomorrow = new Date(Date.now() + 24 * 3600_000);
      tomorrow.setSeconds(0, 0);
      await sendAt.fill(local(tomorrow));
      await page.getByRole('button', { name: 'Schedule' }).click();
      const dialog = page.getByRole('dialog', { name: 'Send to 3 readers?' });
      await dialog.waitFor();
      await page.keyboard.press('Escape');
      await dialog.waitFor({ state: 'detached' });
      expect(await sendOf(id)).toBeNull();

      await page.getByRole('button', { name: 'Schedule' }).click();
      await dialog.getByRole('button', { name: 'Confirm' }).click();
      await page.getByRole('button', { name: 'Reschedule' }).waitFor();
      expect((await sendOf(id))?.toISOString()).toBe(tomorrow.toISOString());
      expect(await page.getByLabel('Subject').getAttribute('readonly')).not.toBeNull();

      const later = new Date(tomorrow.getTime() + 2 * 3600_000);
      await sendAt.fill(local(later));
      await page.getByRole('button', { name: 'Reschedule' }).click();
      await page.getByRole('status').filter({ hasText: 'Rescheduled' }).waitFor();
      expect((await sendOf(id))?.toISOString()).toBe(later.toISOString());

      await page.getByRole('button', { name: 'Unschedule' }).click();
      await page.getByRole('button', { name: 'Send now' }).waitFor();
      expect(await sendOf(id)).toBeNull();
      expect(await page.getByLabel('Subject').getAttribute('readonly')).toBeNull();

      await page.getByRole('button', { name: 'Send now' }).click();
      await page.getByRole('dialog', { name: 'Send to 3 readers?' }).getByRole('button', { name: 'Confirm' }).click();
      await page.getByRole('status').filter({ hasText: 'Sending has started' }).waitFor();
      const state = await t.app.inject({ method: 'GET', url: `/api/issues/${id}`, headers: t.auth });
      expect(state.json().state).toBe('sending');
    });
  });

  it('corrects a published issue only on Save correction, saying what changes and what does not', async () => {
    const { id } = await createIssue('Wrong nmae');
    expect((await t.app.inject({ method: 'POST', url: `/api/issues/${id}/publish`, headers: t.auth })).statusCode).toBe(200);
    await asEditor({}, async (page) => {
      await signIn(page, `/editor/issues/${id}`);
      const note = page.getByText('Saving a change corrects its web version, the archive and the feed; mail already sent does not change.');
      await note.waitFor();
      await page.getByLabel('Subject').fill('Right name');
      await page.getByRole('status').filter({ hasText: 'Unsaved correction' }).waitFor();
      // No autosave for a public issue: the editor decides when the correction goes out.
      expect((await dbIssue(id)).subject).toBe('Wrong nmae');
      await page.getByRole('button', { name: 'Save correction' }).click();
      await page
        .getByRole('status')
        .filter({ hasText: /^Saved$/ })
        .waitFor();
      expect((await dbIssue(id)).subject).toBe('Right name');
      const web = await t.app.inject({
        method: 'GET',
        url: (await t.app.inject({ method: 'GET', url: `/api/issues/${id}`, headers: t.auth })).json().webUrl.replace(/^https?:\/\/[^/]+/, ''),
      });
      expect(web.body).toContain('Right name');
    });
  });

  it('unpublishes a published issue after confirming', async () => {
    const { id } = await createIssue('Out it goes');
    expect((await t.app.inject({ method: 'POST', url: `/api/issues/${id}/publish`, headers: t.auth })).statusCode).toBe(200);
    await asEditor({}, async (page) => {
      await signIn(page, `/editor/issues/${id}`);
      await page.getByText('Saving a change corrects its web version').waitFor();
      await page.getByRole('button', { name: 'Unpublish' }).click();
      await page.getByRole('dialog', { name: 'Unpublish this issue?' }).getByRole('button', { name: 'Confirm' }).click();
      await page.getByRole('status').filter({ hasText: 'Unpublished' }).waitFor();
      const after = await t.app.inject({ method: 'GET', url: `/api/issues/${id}`, headers: t.auth });
      expect(after.json()).toEqual(expect.objectContaining({ state: 'draft', inArchive: false }));
    });
  });
});

describe('readers', () => {
  it('adds a reader, finds them, shows their consent, imports a CSV with bad lines, exports, and erases', async () => {
    await asEditor({ viewport: { width: 1280, height: 900 }, acceptDownloads: true }, async (page) => {
      await signIn(page, '/editor/readers');
      await page.getByRole('heading', { level: 1, name: 'Readers' }).waitFor();
      const counts = page.getByRole('list', { name: 'Counts by status' });
      const countOf = async (status: string) => {
        const items = await counts.getByRole('listitem').allTextContents();
        return items.find((i) => i.endsWith(` ${status}`));
      };
      await until('the counts by status are shown', async () => (await countOf('active')) !== undefined);
      const activeBefore = Number((await countOf('active'))!.split(' ')[0]!.replace(/\D/g, ''));
      expect(await countOf('complained')).toBeDefined();

      await page.getByLabel('Email address').fill('not-an-address');
      await page.getByRole('button', { name: 'Add reader' }).click();
      await page.getByRole('alert').first().waitFor();
      await page.getByLabel('Email address').fill('Dora.Added@example.com');
      await page.getByLabel('Name (optional)').fill('Dora');
      await page.getByRole('button', { name: 'Add reader' }).click();
      await page.getByRole('status').filter({ hasText: 'Dora.Added@example.com added' }).waitFor();
      await until('the active count went up by one', async () => (await countOf('active')) === `${activeBefore + 1} active`);

      await page.getByLabel('Search readers').fill('dora.added');
      await page.getByRole('button', { name: 'Search' }).click();
      const list = page.getByRole('list', { name: 'Readers' });
      await until('only Dora is listed', async () => (await list.getByRole('listitem').count()) === 1);

      const csv = 'email,name\nfirst.import@example.com,First\nnot an address,Bad\nsecond.import@example.com,Second\n,Empty\n';
      await page.getByLabel('CSV file').setInputFiles({ name: 'readers.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
      await page.getByRole('button', { name: 'Import' }).click();
      await page.getByText('2 of 4 rows accepted, 2 rejected.').waitFor();
      // The upload's progress, from the browser's upload events: all of the file, then read.
      const bar = page.getByRole('progressbar', { name: 'Import' });
      expect(await bar.evaluate((el) => [(el as unknown as { value: number }).value, (el as unknown as { max: number }).max])).toEqual([
        csv.length,
        csv.length,
      ]);
      expect(await page.getByRole('status').filter({ hasText: 'All 1 KB sent and read.' }).count()).toBe(1);
      const rejected = await page.getByRole('list', { name: 'Rejected lines' }).getByRole('listitem').allTextContents();
      expect(rejected).toHaveLength(2);
      expect(rejected[0]).toMatch(/^Line 3 \(not an address\): /);
      expect(rejected[1]).toMatch(/^Line 5 /);

      await page.getByLabel('Search readers').fill('');
      await page.getByRole('button', { name: 'Search' }).click();
      const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Export CSV' }).click()]);
      const exported = await new Promise<string>((resolve, reject) => {
        void download.createReadStream().then((stream) => {
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('end', () => resolve(Buffer.concat(chunks).toString()));
          stream.on('error', reject);
        }, reject);
      });
      expect(exported).toContain('first.import@example.com');
      expect(exported).toContain('Dora.Added@example.com');

      // Her page: consent evidence, her bounces (one recorded here), Erase behind a confirmation.
      const dora = await t.c.pool.query<{ id: string }>(`SELECT id FROM subscribers WHERE email_normalized = 'dora.added@example.com'`);
      await t.c.pool.query(
        `INSERT INTO bounces (subscriber_id, matched_by, type, source, recipient, status, diagnostic) VALUES ($1, 'address', 'soft', 'dsn', 'Dora.Added@example.com', '4.2.2', 'mailbox full')`,
        [dora.rows[0]!.id],
      );
      await page.getByLabel('Search readers').fill('dora.added');
      await page.getByRole('button', { name: 'Search' }).click();
      await until('only Dora is listed again', async () => (await list.getByRole('listitem').count()) === 1);
      await list.getByRole('link', { name: 'Dora.Added@example.com' }).click();
      await page.getByRole('heading', { level: 1, name: 'Dora.Added@example.com' }).waitFor();
      const consent = page.getByRole('region', { name: 'Consent evidence' });
      expect(await consent.textContent()).toContain('api');
      const bounces = page.getByRole('list', { name: 'Bounces and complaints of Dora.Added@example.com' });
      await bounces.waitFor();
      expect(await bounces.textContent()).toContain('mailbox full');
      await page.getByRole('button', { name: 'Erase Dora.Added@example.com' }).click();
      await page.getByRole('dialog', { name: 'Erase Dora.Added@example.com?' }).getByRole('button', { name: 'Cancel' }).click();
      expect(await page.getByRole('dialog').count()).toBe(0);
      await page.getByRole('button', { name: 'Erase Dora.Added@example.com' }).click();
      await page.getByRole('dialog', { name: 'Erase Dora.Added@example.com?' }).getByRole('button', { name: 'Erase' }).click();
      await page.getByRole('status').filter({ hasText: 'was erased' }).waitFor();
      const left = await t.c.pool.query(`SELECT count(*)::int AS n FROM subscribers WHERE email_normalized = 'dora.added@example.com'`);
      expect(left.rows[0].n).toBe(0);
    });
  });
  it('shows how much of a large CSV has gone while it uploads, then the report', async () => {
    await asEditor({ viewport: { width: 375, height: 740 } }, async (page, ctx) => {
      await signIn(page, '/editor/readers');
      // A slow uplink (Chromium's network emulation), so the upload takes a few seconds.
      const cdp = await ctx.newCDPSession(page);
      await cdp.send('Network.enable');
      await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 64 * 1024 });
      const lines = Array.from({ length: 4000 }, (_, i) => `slow.upload.${i}@example.com,Reader number ${i}`);
      const csv = `email,name\n${lines.join('\n')}\n`;
      await page.getByLabel('CSV file').setInputFiles({ name: 'many.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
      await page.getByRole('button', { name: 'Import' }).click();
      const bar = page.getByRole('progressbar', { name: 'Importing many.csv' });
      const sentSoFar = () => bar.evaluate((el) => (el as unknown as { value: number }).value);
      await until('part of the file has gone, not all', async () => {
        if ((await bar.count()) === 0) return false;
        const v = await sentSoFar();
        return v > 0 && v < csv.length;
      });
      expect(
        await page
          .getByRole('status')
          .filter({ hasText: /KB of \d+ KB sent \(\d+ %\)/ })
          .count(),
      ).toBe(1);
      await page.getByText('4,000 of 4,000 rows accepted, 0 rejected.').waitFor({ timeout: 30_000 });
      expect(await page.getByRole('progressbar', { name: 'Import' }).evaluate((el) => (el as unknown as { value: number }).value)).toBe(csv.length);
    });
  }, 60_000);
});

describe('the send console, with a worker and a relay that refuses one reader for now', () => {
  let w: TestContext;
  let wBase = '';
  beforeAll(async () => {
    const port = await freePort();
    wBase = `http://127.0.0.1:${port}`;
    // Slow enough to pause mid-send; one attempt, so the refused reader's message fails at once.
    w = await createTestContext({ worker: true, env: { PUBLIC_URL: wBase, SIGNIN_RATE_LIMIT: '1000', SEND_RATE: '2', DELIVERY_ATTEMPTS: '1' } });
    await w.app.listen({ port, host: '127.0.0.1' });
  }, 60_000);
  afterAll(async () => {
    await w?.close();
  });

  it('shows the send live, pauses and resumes it, lists the failure with the relay answer and retries it', async () => {
    const emails = Array.from({ length: 12 }, (_, i) => `reader${i}@example.com`);
    await addActiveReaders(w, [...emails, 'flaky@example.com']);
    w.smtp.rejectRecipient = (address) => (address === 'flaky@example.com' ? { code: 451, message: '4.2.0 Mailbox busy, try later' } : undefined);
    const created = await w.app.inject({ method: 'POST', url: '/api/issues', headers: w.auth, payload: { subject: 'Watched live', markdown: 'Hello.' } });
    const { id } = created.json() as { id: number };
    const counts = async () =>
      Object.fromEntries(
        (await w.c.pool.query<{ status: string; n: number }>('SELECT status, count(*)::int AS n FROM messages GROUP BY status')).rows.map((r) => [
          r.status,
          r.n,
        ]),
      ) as Record<string, number>;

    await asEditor({ viewport: { width: 1280, height: 900 } }, async (page) => {
      await page.goto(`${wBase}/editor/issues/${id}`);
      await page.getByLabel('API token').fill(TEST_TOKEN);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('button', { name: 'Send now' }).click();
      await page.getByRole('dialog', { name: 'Send to 13 readers?' }).getByRole('button', { name: 'Confirm' }).click();

      const heading = page.getByRole('heading', { level: 2, name: /^Send: / });
      await until('the console shows the send under way', async () => (await heading.textContent()) === 'Send: Sending');
      await until('a first message submitted', async () => ((await counts()).submitted ?? 0) >= 1);
      await page.getByRole('button', { name: 'Pause' }).click();
      await until('the console says paused', async () => (await heading.textContent()) === 'Send: Paused');
      await page.getByRole('button', { name: 'Resume' }).waitFor();
      const paused = await w.app.inject({ method: 'GET', url: `/api/issues/${id}/send`, headers: w.auth });
      expect(paused.json().status).toBe('paused');
      expect(paused.json().submitted).toBeLessThan(13);

      await page.getByRole('button', { name: 'Resume' }).click();
      // Live: the counts move in the page without a reload.
      await until('the console says finished', async () => (await heading.textContent()) === 'Send: Finished', 30_000);
      const submitted = page.locator('.counts div').filter({ hasText: 'Submitted' }).locator('dd');
      expect(await submitted.textContent()).toBe('12');
      const failures = page.getByRole('list', { name: 'Failed and bounced messages' });
      await failures.getByText('flaky@example.com').waitFor();
      expect(await failures.textContent()).toContain('Mailbox busy');

      w.smtp.rejectRecipient = () => undefined;
      await page.getByRole('button', { name: 'Retry failed' }).click();
      await page.getByRole('status').filter({ hasText: '1 failed message(s) queued again' }).waitFor();
      await until('the retried copy is accepted', async () => (await counts()).submitted === 13, 30_000);
      await w.smtp.waitFor((m) => m.recipients.includes('flaky@example.com'));
      await until('the console shows it', async () => (await submitted.textContent()) === '13', 15_000);
      expect(await page.getByRole('button', { name: 'Retry failed' }).count()).toBe(0);
    });
  }, 90_000);

  it('cancels a send under way after asking: the console says so and nothing queued is sent', async () => {
    await addActiveReaders(
      w,
      Array.from({ length: 8 }, (_, i) => `cancel${i}@example.com`),
    );
    const created = await w.app.inject({ method: 'POST', url: '/api/issues', headers: w.auth, payload: { subject: 'Cancelled live', markdown: 'Hello.' } });
    const { id } = created.json() as { id: number };
    const sendCounts = async () =>
      Object.fromEntries(
        (
          await w.c.pool.query<{ status: string; n: number }>(
            'SELECT m.status, count(*)::int AS n FROM messages m JOIN sends s ON s.id = m.send_id WHERE s.issue_id = $1 GROUP BY m.status',
            [id],
          )
        ).rows.map((r) => [r.status, r.n]),
      ) as Record<string, number>;

    await asEditor({ viewport: { width: 1280, height: 900 } }, async (page) => {
      await page.goto(`${wBase}/editor/issues/${id}`);
      await page.getByLabel('API token').fill(TEST_TOKEN);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('button', { name: 'Send now' }).click();
      await page
        .getByRole('dialog', { name: /^Send to \d+ readers\?$/ })
        .getByRole('button', { name: 'Confirm' })
        .click();
      const heading = page.getByRole('heading', { level: 2, name: /^Send: / });
      await until('the console shows the send under way', async () => (await heading.textContent()) === 'Send: Sending');
      await until('a first message submitted', async () => ((await sendCounts()).submitted ?? 0) >= 1);

      await page.getByRole('button', { name: 'Cancel send' }).click();
      const ask = page.getByRole('group', { name: 'Cancel the send?' });
      await ask.getByRole('button', { name: 'Yes, cancel the send' }).click();
      await until('the console says cancelled', async () => (await heading.textContent()) === 'Send: Cancelled', 15_000);
      expect(await page.getByRole('button', { name: 'Cancel send' }).count()).toBe(0);
      const sent = await w.app.inject({ method: 'GET', url: `/api/issues/${id}/send`, headers: w.auth });
      expect(sent.json()).toMatchObject({ status: 'cancelled', queued: 0 });
      expect(sent.json().cancelled).toBeGreaterThan(0);
    });
  }, 90_000);
});

describe('accessibility and layout', () => {
  it('every screen built so far has no serious or critical axe-core violation', async () => {
    const { id } = await createIssue('Scanned by axe');
    // axe-core's script is added to the page, which the CSP refuses: this context bypasses it.
    await withBrowserContext(browser!, { bypassCSP: true }, async (ctx) => {
      const page = await ctx.newPage();
      await page.goto(`${base}/editor`);
      await page.getByLabel('API token').waitFor();
      const scans: Record<string, unknown> = { 'sign-in': await axeViolations(page) };
      await signIn(page, '/editor/issues');
      await page.getByRole('link', { name: 'Scanned by axe' }).waitFor();
      scans.issues = await axeViolations(page);
      await page.goto(`${base}/editor/issues/${id}`);
      await page
        .getByRole('status')
        .filter({ hasText: /^Saved$/ })
        .waitFor();
      scans.writer = await axeViolations(page);
      await page.getByRole('button', { name: 'Send now' }).click();
      await page.getByRole('dialog').waitFor();
      scans['confirmation dialog'] = await axeViolations(page);
      await page.keyboard.press('Escape');
      await page.goto(`${base}/editor/issues/new`);
      await page.getByLabel('Subject').waitFor();
      scans['new issue'] = await axeViolations(page);
      // No worker runs here: the send stays under way, and its console shows.
      const sent = await createIssue('Scanned while sending');
      expect((await t.app.inject({ method: 'POST', url: `/api/issues/${sent.id}/send`, headers: t.auth, payload: {} })).statusCode).toBe(202);
      await page.goto(`${base}/editor/issues/${sent.id}`);
      await page.getByRole('heading', { level: 2, name: 'Send: Sending' }).waitFor();
      scans['send console'] = await axeViolations(page);
      for (const screen of ['readers', 'bounces']) {
        await page.goto(`${base}/editor/${screen}`);
        await page.getByRole('heading', { level: 1 }).waitFor();
        scans[screen] = await axeViolations(page);
      }
      await page.goto(`${base}/editor/readers`);
      await page
        .getByLabel('CSV file')
        .setInputFiles({ name: 'scan.csv', mimeType: 'text/csv', buffer: Buffer.from('email\nscanned.import@example.com\nbad line\n') });
      await page.getByRole('button', { name: 'Import' }).click();
      await page.getByRole('list', { name: 'Rejected lines' }).waitFor();
      scans['an import done'] = await axeViolations(page);
      const reader = await t.app.inject({ method: 'POST', url: '/api/subscribers', headers: t.auth, payload: { email: 'scanned.reader@example.com' } });
      await page.goto(`${base}/editor/readers/${reader.json().id}`);
      await page.getByRole('heading', { level: 1, name: 'scanned.reader@example.com' }).waitFor();
      scans["a reader's page"] = await axeViolations(page);
      await page.getByRole('button', { name: 'Erase scanned.reader@example.com' }).click();
      await page.getByRole('dialog').waitFor();
      scans['erase dialog'] = await axeViolations(page);
      expect(scans).toEqual({
        'sign-in': [],
        issues: [],
        writer: [],
        'confirmation dialog': [],
        'new issue': [],
        'send console': [],
        readers: [],
        bounces: [],
        'an import done': [],
        "a reader's page": [],
        'erase dialog': [],
      });
    });
  }, 90_000);

  it.each([
    [375, 740],
    [1280, 900],
  ])('at %i px wide nothing scrolls sideways and the screens work with the keyboard alone', async (width, height) => {
    const { id } = await createIssue(`Seen at ${width} px`);
    await asEditor({ viewport: { width, height } }, async (page) => {
      await page.goto(`${base}/editor`);
      await page.getByLabel('API token').waitFor();
      // Keyboard only: to the field, type, Enter.
      await page.keyboard.press('Tab');
      await page.keyboard.type(TEST_TOKEN);
      await page.keyboard.press('Enter');
      await page.getByRole('link', { name: `Seen at ${width} px` }).waitFor();
      await noHorizontalScroll(page);

      // Tab to the issue's link, with a visible focus ring, and open it with Enter.
      const link = page.getByRole('link', { name: `Seen at ${width} px` });
      for (let i = 0; i < 20 && !(await link.evaluate((el) => el === (el.ownerDocument as { activeElement: unknown }).activeElement)); i += 1) {
        await page.keyboard.press('Tab');
      }
      const outline = await link.evaluate((el) => {
        const s = (globalThis as unknown as { getComputedStyle(e: unknown): { outlineStyle: string; outlineWidth: string } }).getComputedStyle(el);
        return `${s.outlineStyle} ${s.outlineWidth}`;
      });
      expect(outline).toBe('solid 3px');
      await page.keyboard.press('Enter');
      await page.waitForURL(`**/editor/issues/${id}`);
      await page
        .getByRole('status')
        .filter({ hasText: /^Saved$/ })
        .waitFor();
      await noHorizontalScroll(page);
      for (const name of ['Subject', 'Preheader', 'Markdown']) {
        const box = (await page.getByLabel(name).boundingBox())!;
        expect([name, box.x >= 0 && box.x + box.width <= width]).toEqual([name, true]);
      }
      for (const screen of ['Readers', 'Bounces']) {
        await page.getByRole('link', { name: screen }).click();
        await page.getByRole('heading', { level: 1, name: screen }).waitFor();
        await noHorizontalScroll(page);
      }
      const email = `reader.at.${width}@example.com`;
      const reader = await t.app.inject({ method: 'POST', url: '/api/subscribers', headers: t.auth, payload: { email } });
      await page.goto(`${base}/editor/readers/${reader.json().id}`);
      await page.getByRole('heading', { level: 1, name: email }).waitFor();
      await noHorizontalScroll(page);
    });
  });
});
