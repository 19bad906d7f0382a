import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { maskEmail, maskUrl } from '../../src/log.js';
import { createTestContext, linkIn, pathOf, TEST_TOKEN, type TestContext } from '../support/context.js';
import { captureLog } from '../support/log-capture.js';

const captured = captureLog();

let t: TestContext;
beforeAll(async () => {
  t = await createTestContext({ worker: true, logTo: captured.stream, env: { LOG_LEVEL: 'info' } });
});
afterAll(async () => {
  await t?.close();
});

describe('logs', () => {
  it('mask reader tokens in URLs and addresses, and never contain the editor token', async () => {
    await t.app.inject({ method: 'POST', url: '/subscribe', payload: { email: 'secretive.reader@example.com' } });
    const mail = await t.smtp.waitFor((m) => m.recipients.includes('secretive.reader@example.com'));
    const confirmPath = pathOf(linkIn(mail.parsed.text ?? '', '/confirm/'));
    await t.app.inject({ method: 'GET', url: confirmPath });
    await t.app.inject({ method: 'POST', url: confirmPath });
    await t.app.inject({ method: 'GET', url: '/api/subscribers', headers: t.auth });
    await t.app.inject({ method: 'GET', url: '/api/subscribers', headers: { authorization: 'Bearer wrong-token-guess-123' } });
    await t.smtp.waitFor((m) => m.parsed.subject?.startsWith('Welcome') ?? false);

    const log = captured.text();
    expect(log).toContain('"url":"/confirm/…"');
    expect(log).not.toContain(confirmPath.split('/')[2]);
    expect(log).not.toContain('secretive.reader@example.com');
    expect(log).toContain('s***@example.com');
    expect(log).not.toContain(TEST_TOKEN);
    expect(log).not.toContain('wrong-token-guess-123');
  });

  it('never writes a token sent in the query string, as access_token or under any credential-like name', async () => {
    const misplaced = 'misplaced-token-Zq81vR4p';
    for (const url of [
      `/api/subscribers?access_token=${TEST_TOKEN}&limit=5`,
      `/api/subscribers?limit=5&ACCESS%5FTOKEN=${TEST_TOKEN}`,
      `/readyz?api_key=${misplaced}`,
      `/no/such/route?secret=${misplaced}`,
    ]) {
      const res = await t.app.inject({ method: 'GET', url });
      expect(res.statusCode).not.toBe(500);
    }
    const log = captured.text();
    expect(log).toContain('"url":"/api/subscribers?access_token=…&limit=5"');
    expect(log).toContain('"url":"/api/subscribers?limit=5&ACCESS%5FTOKEN=…"');
    expect(log).toContain('"url":"/readyz?api_key=…"');
    expect(log).not.toContain(TEST_TOKEN);
    expect(log).not.toContain(misplaced);
  });

  it('masks helpers cover every token route and query tokens', () => {
    expect(maskUrl('/x?access_token=abc&api_key=k&password=p&signature=s&limit=5')).toBe('/x?access_token=…&api_key=…&password=…&signature=…&limit=5');
    expect(maskUrl('/issues?before=2026-01-01&utm_source=news')).toBe('/issues?before=2026-01-01&utm_source=news');
    expect(maskUrl('/unsubscribe/u.1.0.abc?x=1')).toBe('/unsubscribe/…?x=1');
    expect(maskUrl('/manage/m.1.0.abc/data.json')).toBe('/manage/…/data.json');
    expect(maskUrl('/data/d.1.abc.def/erase')).toBe('/data/…/erase');
    expect(maskUrl('/x?token=abc&t=def')).toBe('/x?token=…&t=…');
    expect(maskEmail('jane.doe@example.com')).toBe('j***@example.com');
    expect(maskEmail('not-an-address')).toBe('***');
  });
});
