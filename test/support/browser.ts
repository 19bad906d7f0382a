// Debian's Chromium driven by playwright-core, for the tests of pages in a real browser. Not a
// Playwright download: CI installs Chromium with apt-get (see .ci/run). A missing or broken
// browser is a broken machine, not a reason to skip, so every test using it fails.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
const AXE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../node_modules/axe-core/axe.min.js');

/** Starts Chromium headless; throws, saying what to install, when it is missing or does not start. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium is not installed at ${CHROMIUM}: run \`apt-get update && apt-get install -y chromium\` (.ci/run does this)`);
  }
  try {
    return await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  } catch (err) {
    throw new Error(`Chromium at ${CHROMIUM} did not start: ${(err as Error).message}`);
  }
}

/** Runs `fn` in a fresh browser context, closed afterwards: no cookie or cache from one test helps another. */
export async function withContext<T>(browser: Browser, opts: Parameters<Browser['newContext']>[0], fn: (ctx: BrowserContext) => Promise<T>): Promise<T> {
  const ctx = await browser.newContext(opts);
  try {
    return await fn(ctx);
  } finally {
    await ctx.close();
  }
}

export type AxeViolation = { id: string; nodes: string[] };

/**
 * WCAG 2 A and AA violations on the page, as axe-core finds them (loaded from node_modules:
 * nothing from another host). A page whose CSP forbids scripts needs a context made with
 * `bypassCSP: true` for axe-core's own script to run.
 */
export async function axeViolations(page: Page): Promise<AxeViolation[]> {
  await page.addScriptTag({ path: AXE });
  const result = await page.evaluate(async () => {
    type Axe = { run(ctx: unknown, opts: unknown): Promise<{ violations: { id: string; nodes: { html: string }[] }[] }> };
    const axe = (globalThis as unknown as { axe: Axe }).axe;
    return axe.run((globalThis as unknown as { document: unknown }).document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] }, iframes: false });
  });
  return result.violations.map((v) => ({ id: v.id, nodes: v.nodes.map((n) => n.html) }));
}
