import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startCaptureServer, type CaptureServer } from '../../src/capture/capture-server.js';
import { createTestContext, TEST_TOKEN, type TestContext } from '../support/context.js';
import { until } from '../support/editor.js';
import { freePort } from '../support/free-port.js';
import { axeViolations, launchChromium, withContext as withBrowserContext } from '../support/browser.js';

const READER = 'viewer.reader@example.com';
const SUBJECT = 'Confirm your subscription to The Test Letter';

let t: TestContext | undefined;
let capture: CaptureServer | undefined;
let browser: Browser | undefined;
let dataDir = '';
let base = '';

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'broadside-viewer-'));
  // The service's own capture server, storing under DATA_DIR/mail, where the viewer reads.
  capture = await startCaptureServer({ dir: path.join(dataDir, 'mail'), port: 0, log: pino({ level: 'silent' }) });
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  t = await createTestContext({ worker: true, env: { DATA_DIR: dataDir, SMTP_URL: `smtp://127.0.0.1:${capture.port}`, PUBLIC_URL: base } });
  await t.app.listen({ port, host: '127.0.0.1' });
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await t?.close();
  await capture?.close();
  await rm(dataDir, { recursive: true, force: true });
});

/** The operator signs in with any user name and the token as password (HTTP Basic). */
const operator = { httpCredentials: { username: 'operator', password: TEST_TOKEN } };

const withContext = <T>(opts: Parameters<Browser['newContext']>[0], fn: (ctx: BrowserContext) => Promise<T>) => withBrowserContext(browser!, opts, fn);

async function signUp(page: Page, email: string): Promise<void> {
  await page.goto(`${base}/`);
  await page.getByRole('textbox', { name: 'Email address' }).fill(email);
  await Promise.all([page.waitForURL('**/subscribe/check-inbox'), page.getByRole('button', { name: 'Subscribe' }).click()]);
}

/** Waits until the capture server stored a message for `email` (as the viewer finds it). */
async function captured(email: string): Promise<void> {
  await until(
    `the confirmation for ${email} in the capture inbox`,
    async () => {
      const res = await t!.app.inject({ method: 'GET', url: `/admin/mail?q=${encodeURIComponent(email)}`, headers: { authorization: `Bearer ${TEST_TOKEN}` } });
      return res.statusCode === 200 && res.body.includes(SUBJECT);
    },
    20_000,
  );
}

describe('the captured-mail viewer in Chromium', () => {
  it('signs up, opens the captured confirmation, presses its button and lands on the confirm page', async () => {
    await withContext(operator, async (ctx) => {
      const page = await ctx.newPage();
      const blocked: string[] = [];
      ctx.on('console', (m) => {
        if (/Blocked|sandbox/i.test(m.text())) blocked.push(m.text());
      });
      await signUp(page, READER);
      await captured(READER);

      // The inbox: search by recipient, open the message.
      await page.goto(`${base}/admin/mail`);
      await page.getByRole('searchbox', { name: 'Search recipient or subject' }).fill('viewer.reader');
      await Promise.all([page.waitForURL('**/admin/mail?q=viewer.reader'), page.getByRole('button', { name: 'Search' }).click()]);
      expect(await page.getByRole('row').count()).toBe(2);
      await Promise.all([page.waitForURL(/\/admin\/mail\/\d{14}-[0-9a-f]{8}$/), page.getByRole('link', { name: SUBJECT }).click()]);
      expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe(SUBJECT);

      // The HTML part, in its sandboxed frame: the button opens the confirm page in a new tab.
      const frame = page.frameLocator('iframe[title="HTML part"]');
      const button = frame.getByRole('link', { name: 'Confirm my subscription' });
      await button.waitFor();
      const [confirmTab] = await Promise.all([ctx.waitForEvent('page'), button.click()]);
      await confirmTab.waitForLoadState();
      expect(confirmTab.url()).toMatch(new RegExp(`^${base}/confirm/[^/]+$`));
      expect(await confirmTab.getByRole('heading', { level: 1 }).textContent()).toBe('Confirm your subscription');

      // The tab is out of the sandbox: its form works.
      await confirmTab.getByRole('button', { name: 'Yes, subscribe me' }).click();
      await confirmTab.getByRole('heading', { level: 1, name: 'You are subscribed' }).waitFor({ timeout: 10_000 });
      const { rows } = await t!.c.pool.query(`SELECT status FROM subscribers WHERE email_normalized = $1`, [READER]);
      expect(rows).toEqual([{ status: 'active' }]);
      expect(blocked).toEqual([]);
    });
  }, 60_000);

  it("shows the text part's addresses as links that wrap inside the page, and downloads the message as .eml", async () => {
    await withContext({ ...operator, acceptDownloads: true, viewport: { width: 800, height: 900 } }, async (ctx) => {
      const page = await ctx.newPage();
      await page.goto(`${base}/admin/mail?q=${encodeURIComponent(READER)}`);
      await page.getByRole('link', { name: SUBJECT }).click();
      const link = page.locator('pre.text-part').getByRole('link', { name: /\/confirm\// });
      expect(await link.count()).toBe(1);
      expect(await link.getAttribute('href')).toMatch(new RegExp(`^${base}/confirm/`));
      const fits = await page.locator('pre.text-part').evaluate((el) => {
        const e = el as unknown as { scrollWidth: number; clientWidth: number };
        return e.scrollWidth <= e.clientWidth;
      });
      expect(fits).toBe(true);

      const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download .eml' }).click()]);
      expect(download.suggestedFilename()).toMatch(/^\d{14}-[0-9a-f]{8}\.eml$/);
      const file = path.join(dataDir, 'mail', download.suggestedFilename());
      expect(await readFile((await download.path())!)).toEqual(await readFile(file));
    });
  }, 60_000);

  it('has no WCAG 2 A/AA violations that axe-core finds, on the list and on a message', async () => {
    // bypassCSP lets axe-core's script in; the pages themselves run none.
    await withContext({ ...operator, bypassCSP: true }, async (ctx) => {
      const page = await ctx.newPage();
      await page.goto(`${base}/admin/mail`);
      expect(await axeViolations(page)).toEqual([]);
      const id = (await readdir(path.join(dataDir, 'mail'))).find((f) => f.endsWith('.eml'))!.slice(0, -4);
      await page.goto(`${base}/admin/mail/${id}`);
      expect(await axeViolations(page)).toEqual([]);
    });
  }, 60_000);
});
