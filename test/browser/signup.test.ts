import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Browser, BrowserContext } from 'playwright-core';
import { launchChromium, withContext as withBrowserContext } from '../support/browser.js';
import { createTestContext, linkIn, type TestContext } from '../support/context.js';

let t: TestContext | undefined;
let browser: Browser | undefined;
let base = '';

beforeAll(async () => {
  t = await createTestContext({ worker: true });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await t?.close();
});

type PageGlobals = { innerWidth: number; document: { documentElement: { scrollWidth: number }; body: { scrollWidth: number } } };

const withContext = <T>(opts: Parameters<Browser['newContext']>[0], fn: (ctx: BrowserContext) => Promise<T>) => withBrowserContext(browser!, opts, fn);

describe('the signup page in a real browser', () => {
  it('signs a reader up through the form and confirms them through the emailed link', async () => {
    await withContext({}, async (ctx) => {
      const page = await ctx.newPage();
      const res = await page.goto(`${base}/`);
      expect(res?.status()).toBe(200);

      // Found by their labels, as a screen reader would announce them.
      const email = page.getByRole('textbox', { name: 'Email address' });
      await expect(email.getAttribute('type')).resolves.toBe('email');
      await expect(email.getAttribute('autocomplete')).resolves.toBe('email');
      await expect(email.getAttribute('required')).resolves.not.toBeNull();
      const name = page.getByRole('textbox', { name: /^Name/ });
      expect(await name.count()).toBe(1);
      await expect(name.getAttribute('required')).resolves.toBeNull();

      // The honeypot is in the form for bots, but neither seen nor announced nor tabbed to.
      const honeypot = page.locator('input[name="website"]');
      expect(await honeypot.count()).toBe(1);
      const box = await honeypot.boundingBox();
      const viewport = page.viewportSize()!;
      const outOfView = box === null || box.x + box.width <= 0 || box.y + box.height <= 0 || box.x >= viewport.width || box.width * box.height <= 1;
      expect(outOfView).toBe(true);
      expect(await page.getByRole('textbox', { name: /leave this field/i }).count()).toBe(0);
      expect(await page.getByRole('textbox').count()).toBe(2);
      await expect(honeypot.getAttribute('tabindex')).resolves.toBe('-1');

      await email.fill('Browser.Reader@example.com');
      await name.fill('Bea Browser');
      await Promise.all([page.waitForURL('**/subscribe/check-inbox'), page.getByRole('button', { name: 'Subscribe' }).click()]);
      expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Check your inbox');

      const mail = await t!.smtp.waitFor((m) => m.recipients.some((r) => r.toLowerCase() === 'browser.reader@example.com'));
      expect(mail.parsed.subject).toBe('Confirm your subscription to The Test Letter');
      const confirmUrl = new URL(linkIn(mail.parsed.text ?? '', '/confirm/'));
      expect(confirmUrl.origin).toBe(t!.config.publicUrl);

      // The link points at PUBLIC_URL, which nothing resolves in the test: same path, our server.
      const confirmPage = await page.goto(`${base}${confirmUrl.pathname}${confirmUrl.search}`);
      expect(confirmPage?.status()).toBe(200);
      expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Confirm your subscription');
      const pending = await t!.c.pool.query(`SELECT status FROM subscribers WHERE email_normalized = 'browser.reader@example.com'`);
      expect(pending.rows).toEqual([{ status: 'pending' }]);

      const posted = page.waitForResponse((r) => r.request().method() === 'POST' && r.url() === `${base}${confirmUrl.pathname}`);
      await page.getByRole('button', { name: 'Yes, subscribe me' }).click();
      expect((await posted).status()).toBe(200);
      await page.getByRole('heading', { level: 1, name: 'You are subscribed' }).waitFor({ timeout: 5_000 });
      const active = await t!.c.pool.query(`SELECT status, name FROM subscribers WHERE email_normalized = 'browser.reader@example.com'`);
      expect(active.rows).toEqual([{ status: 'active', name: 'Bea Browser' }]);
    });
  });

  it('fits a 375px-wide phone screen without horizontal scrolling', async () => {
    await withContext({ viewport: { width: 375, height: 740 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true }, async (ctx) => {
      const page = await ctx.newPage();
      await page.goto(`${base}/`);
      const widths = await page.evaluate(() => {
        // Runs in the page; the tests compile without DOM typings.
        const { innerWidth, document } = globalThis as unknown as PageGlobals;
        return { viewport: innerWidth, document: document.documentElement.scrollWidth, body: document.body.scrollWidth };
      });
      // A mobile browser widens the layout viewport to fit overflowing content, so the width
      // itself is checked too, not only content against viewport.
      expect(widths).toEqual({ viewport: 375, document: 375, body: expect.any(Number) });
      expect(widths.body).toBeLessThanOrEqual(375);
      // Everything a reader must reach lies inside the screen.
      for (const el of [page.getByRole('textbox', { name: 'Email address' }), page.getByRole('button', { name: 'Subscribe' })]) {
        const box = (await el.boundingBox())!;
        expect(box.x).toBeGreaterThanOrEqual(0);
        expect(box.x + box.width).toBeLessThanOrEqual(375);
      }
    });
  });
});
