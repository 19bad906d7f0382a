import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Browser } from 'playwright-core';
import { axeViolations, launchChromium } from '../support/browser.js';
import { createTestContext, type TestContext } from '../support/context.js';
import { freePort } from '../support/free-port.js';
import { IMAGES } from '../support/images.js';
import { until } from '../support/wait.js';

let t: TestContext | undefined;
let browser: Browser | undefined;
let base = '';

beforeAll(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  t = await createTestContext({ env: { PUBLIC_URL: base } });
  await t.app.listen({ port, host: '127.0.0.1' });
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await t?.close();
});

async function previewLink(): Promise<string> {
  const auth = t!.auth;
  const image = await t!.app.inject({ method: 'POST', url: '/api/media', headers: { ...auth, 'content-type': 'image/png' }, payload: IMAGES.png });
  expect([200, 201]).toContain(image.statusCode);
  const markdown = `Hello readers.\n\n## The picture\n\n![A blue box](${image.json().url})\n\nA line of text under it.`;
  const issue = await t!.app.inject({ method: 'POST', url: '/api/issues', headers: auth, payload: { subject: 'Preview in Chromium', markdown } });
  expect(issue.statusCode).toBe(201);
  const link = await t!.app.inject({ method: 'POST', url: `/api/issues/${issue.json().id}/preview-link`, headers: auth });
  expect(link.statusCode).toBe(200);
  return link.json().url as string;
}

describe('the preview link in a real browser', () => {
  it('shows the email with its image, switches to phone width and to the text, and loads nothing from another host', async () => {
    const url = await previewLink();
    const ctx = await browser!.newContext({ viewport: { width: 1280, height: 900 } });
    try {
      const page = await ctx.newPage();
      const requests: string[] = [];
      page.on('request', (r) => requests.push(r.url()));
      const refused: string[] = [];
      page.on('console', (m) => {
        if (/Content Security Policy|Refused/i.test(m.text())) refused.push(m.text());
      });
      const res = await page.goto(url);
      expect(res?.status()).toBe(200);
      expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Preview: Preview in Chromium');

      // The email, in its sandboxed frame, with the uploaded image decoded.
      const frame = page.frameLocator('iframe');
      await frame.getByText('A line of text under it.').waitFor();
      const img = frame.getByRole('img', { name: 'A blue box' });
      await img.waitFor();
      // Decoded: its natural width is the PNG's 3 pixels (a broken image has 0).
      await until('the image to be decoded', () =>
        img.evaluate((el) => {
          const i = el as unknown as { complete: boolean; naturalWidth: number };
          return i.complete && i.naturalWidth === 3;
        }),
      );
      const desktopWidth = (await page.locator('iframe').boundingBox())!.width;
      expect(desktopWidth).toBeGreaterThan(700);

      // Phone width.
      await page.getByRole('link', { name: 'Phone' }).click();
      await page.waitForURL(/view=phone/);
      expect(await page.getByRole('link', { name: 'Phone' }).getAttribute('aria-current')).toBe('page');
      const phoneWidth = (await page.locator('iframe').boundingBox())!.width;
      expect(phoneWidth).toBeGreaterThanOrEqual(370);
      expect(phoneWidth).toBeLessThanOrEqual(380);

      // The text version, at phone width still.
      await page.getByRole('link', { name: 'Text' }).click();
      await page.waitForURL(/format=text/);
      expect(await page.locator('iframe').count()).toBe(0);
      const text = await page.locator('pre').textContent();
      expect(text).toContain('A line of text under it.');
      expect(text).toContain('The picture');

      expect(refused).toEqual([]);
      const origins = new Set(requests.map((r) => new URL(r).origin));
      expect([...origins]).toEqual([base]);
    } finally {
      await ctx.close();
    }
  }, 60_000);

  it('has no WCAG 2 A/AA violations that axe-core finds, at each switch', async () => {
    const url = await previewLink();
    // bypassCSP lets axe-core's script in; the page itself runs none.
    const ctx = await browser!.newContext({ bypassCSP: true });
    try {
      const page = await ctx.newPage();
      for (const query of ['', '?view=phone&format=html', '?view=desktop&format=text']) {
        await page.goto(`${url}${query}`);
        expect([query, await axeViolations(page)]).toEqual([query, []]);
      }
    } finally {
      await ctx.close();
    }
  }, 60_000);

  it('shows a page that says the link has expired or is not valid', async () => {
    const ctx = await browser!.newContext();
    try {
      const page = await ctx.newPage();
      const res = await page.goto(`${base}/preview/1.1.AAAAAAAAAAAAAAAAAAAAAA`);
      expect(res?.status()).toBe(403);
      expect(await page.getByRole('alert').textContent()).toMatch(/not valid/);
    } finally {
      await ctx.close();
    }
  }, 60_000);
});
