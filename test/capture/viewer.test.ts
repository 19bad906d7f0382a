// The captured-mail viewer's list and message routes (the browser test clicks through; this one
// checks paging, search, the download and the frame's policy over HTTP): 120 messages written
// as the capture server writes them, under DATA_DIR/mail.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { load } from 'cheerio';
import { linkifiedText, withLinksInNewTabs } from '../../src/capture/capture-routes.js';
import { createTestContext, type TestContext } from '../support/context.js';

let t: TestContext;
let dataDir: string;
const ids: string[] = [];

/** A capture id as the capture server makes them: the time in ms (14 digits), then 8 hex digits. */
const idAt = (ms: number, n: number) => `${String(ms).padStart(14, '0')}-${n.toString(16).padStart(8, '0')}`;

function eml(n: number): string {
  const to = n % 3 === 0 ? `Reader ${n} <reader${n}@example.org>` : `reader${n}@example.com`;
  const subject = n % 10 === 0 ? `=?UTF-8?Q?Caf=C3=A9_issue_${n}?=` : `Weekly issue ${n}`;
  return [
    'From: The Test Letter <news@broadside.test>',
    `To: ${to}`,
    `Subject: ${subject}`,
    `Date: ${new Date(Date.UTC(2026, 0, 1, 0, n)).toUTCString()}`,
    'MIME-Version: 1.0',
    'Content-Type: multipart/alternative; boundary="b"',
    '',
    '--b',
    'Content-Type: text/plain; charset=utf-8',
    '',
    `Read it at https://news.example.com/issues/${n}?utm=x&y=<z> and <script>alert(1)</script>.`,
    '--b',
    'Content-Type: text/html; charset=utf-8',
    '',
    `<html><head><title>x</title></head><body><a href="https://news.example.com/issues/${n}">Read</a></body></html>`,
    '--b--',
    '',
  ].join('\r\n');
}

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'broadside-viewer-'));
  await mkdir(path.join(dataDir, 'mail'));
  for (let n = 1; n <= 120; n++) {
    const id = idAt(1_790_000_000_000 + n * 1000, n);
    ids.push(id);
    await writeFile(path.join(dataDir, 'mail', `${id}.eml`), eml(n));
  }
  t = await createTestContext({ env: { DATA_DIR: dataDir } });
});

afterAll(async () => {
  await t?.close();
  await rm(dataDir, { recursive: true, force: true });
});

const get = (url: string) => t.app.inject({ method: 'GET', url, headers: t.auth });

/** The subjects listed on a page, and its "Older messages" link. */
async function listing(url: string): Promise<{ subjects: string[]; older: string | undefined; newest: boolean; count: string }> {
  const res = await get(url);
  expect([url, res.statusCode]).toEqual([url, 200]);
  const $ = load(res.body);
  return {
    subjects: $('tbody tr td:nth-child(3) a')
      .map((_, a) => $(a).text())
      .get(),
    older: $('a:contains("Older messages")').attr('href'),
    newest: $('a:contains("Newest messages")').length === 1,
    count: $('main p').eq(1).text().trim(),
  };
}

describe('the captured-mail list', () => {
  it('shows the newest first, 50 a page, and pages back to the oldest', async () => {
    const first = await listing('/admin/mail');
    expect(first.count).toBe('120 messages.');
    expect(first.subjects).toHaveLength(50);
    expect(first.subjects[0]).toBe('Café issue 120');
    expect(first.subjects[1]).toBe('Weekly issue 119');
    expect(first.newest).toBe(false);
    const second = await listing(first.older!);
    expect(second.subjects[0]).toBe('Café issue 70');
    expect(second.subjects).toHaveLength(50);
    expect(second.newest).toBe(true);
    const third = await listing(second.older!);
    expect(third.subjects).toHaveLength(20);
    expect(third.subjects[19]).toBe('Weekly issue 1');
    expect(third.older).toBeUndefined();
  });

  it('searches recipients and subjects, case-insensitively, and pages the matches', async () => {
    const byDomain = await listing('/admin/mail?q=EXAMPLE.ORG');
    expect(byDomain.count).toBe('40 messages match “EXAMPLE.ORG”. Show all');
    expect(byDomain.subjects).toHaveLength(40);
    expect(byDomain.older).toBeUndefined();
    const byName = await listing(`/admin/mail?q=${encodeURIComponent('Reader 99 ')}`);
    expect(byName.subjects).toEqual(['Weekly issue 99']);
    // Subjects are searched decoded (an RFC 2047 encoded word).
    const bySubject = await listing(`/admin/mail?q=${encodeURIComponent('café')}`);
    expect(bySubject.subjects).toEqual([
      'Café issue 120',
      'Café issue 110',
      'Café issue 100',
      'Café issue 90',
      'Café issue 80',
      'Café issue 70',
      'Café issue 60',
      'Café issue 50',
      'Café issue 40',
      'Café issue 30',
      'Café issue 20',
      'Café issue 10',
    ]);
    const issues = await listing('/admin/mail?q=issue');
    expect(issues.subjects).toHaveLength(50);
    const next = await listing(issues.older!);
    expect(next.older).toMatch(/^\/admin\/mail\?q=issue&before=\d{14}-[0-9a-f]{8}$/);
    const none = await listing('/admin/mail?q=nobody');
    expect([none.count, none.subjects]).toEqual(['0 messages match “nobody”. Show all', []]);
  });

  it('refuses a malformed cursor or an overlong search with 400', async () => {
    for (const url of ['/admin/mail?before=1', `/admin/mail?before=${encodeURIComponent('../../etc/passwd')}`, `/admin/mail?q=${'x'.repeat(201)}`]) {
      expect([url, (await get(url)).statusCode]).toEqual([url, 400]);
    }
  });
});

describe('a captured message', () => {
  it('downloads as .eml, byte for byte', async () => {
    const id = ids[41]!;
    const res = await get(`/admin/mail/${id}/message.eml`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^message\/rfc822/);
    expect(res.headers['content-disposition']).toBe(`attachment; filename="${id}.eml"`);
    expect(res.rawPayload).toEqual(await readFile(path.join(dataDir, 'mail', `${id}.eml`)));
    expect((await get('/admin/mail/00000000000000-00000000/message.eml')).statusCode).toBe(404);
  });

  it('frames its HTML part with scripts and forms off and links opening a new tab, and links its text part', async () => {
    const id = ids[0]!;
    const page = await get(`/admin/mail/${id}`);
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-security-policy']).toContain("frame-src 'self'");
    expect(page.headers['content-security-policy']).toContain("default-src 'none'");
    const $ = load(page.body);
    expect($('iframe[title="HTML part"]').attr('sandbox')).toBe('allow-popups allow-popups-to-escape-sandbox allow-top-navigation-by-user-activation');
    // The text part: the address is a link (its query kept), the rest escaped text.
    const link = $('pre.text-part a');
    expect(link.attr('href')).toBe('https://news.example.com/issues/1?utm=x&y=');
    expect($('pre.text-part script')).toHaveLength(0);
    expect($('pre.text-part').text()).toContain('<script>alert(1)</script>');

    const part = await get(`/admin/mail/${id}/html`);
    expect(part.statusCode).toBe(200);
    const csp = part.headers['content-security-policy'] as string;
    expect(csp).toMatch(/(^|; )sandbox allow-popups allow-popups-to-escape-sandbox allow-top-navigation-by-user-activation$/);
    expect(csp).toContain("frame-ancestors 'self'");
    expect(csp).not.toMatch(/script-src|allow-scripts|allow-forms|allow-same-origin/);
    expect(part.body).toContain('<head><base target="_blank"><title>x</title>');
  });
});

describe('the helpers', () => {
  it('withLinksInNewTabs puts the base first in the head, or first of all', () => {
    expect(withLinksInNewTabs('<HTML><Head lang="x"><title>t</title></Head></HTML>')).toBe(
      '<HTML><Head lang="x"><base target="_blank"><title>t</title></Head></HTML>',
    );
    expect(withLinksInNewTabs('<p>no head</p>')).toBe('<base target="_blank"><p>no head</p>');
    // <header> is not <head>.
    expect(withLinksInNewTabs('<header>x</header>')).toBe('<base target="_blank"><header>x</header>');
  });

  it('linkifiedText links http and https only, and escapes everything else', () => {
    expect(linkifiedText('See [https://a.example/x?y=1&z=2]. ftp://b.example mailto:c@d.example <b>').value).toBe(
      'See [<a href="https://a.example/x?y=1&amp;z=2" target="_blank" rel="noreferrer">https://a.example/x?y=1&amp;z=2</a>]. ftp://b.example mailto:c@d.example &lt;b&gt;',
    );
  });
});
