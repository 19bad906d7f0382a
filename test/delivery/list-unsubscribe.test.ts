import { describe, expect, it } from '@jest/globals';
import { listUnsubscribeHeaders } from '../../src/delivery/list-unsubscribe.js';

describe('listUnsubscribeHeaders', () => {
  it('puts the link in angle brackets and asks for RFC 8058 one-click', () => {
    expect(listUnsubscribeHeaders('https://news.example.org/unsubscribe/u.3f.0.abc')).toEqual({
      'List-Unsubscribe': '<https://news.example.org/unsubscribe/u.3f.0.abc>',
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
    });
  });

  it('keeps a long link with a query whole', () => {
    const url = `https://news.example.org/unsubscribe/u.3f.0.${'A1b2C3d4'.repeat(12)}?utm_source=newsletter&x=1=2`;
    expect(listUnsubscribeHeaders(url)['List-Unsubscribe']).toBe(`<${url}>`);
  });

  it('refuses a link that would end the brackets or the header line', () => {
    for (const url of ['https://a.example/u>x', 'https://a.example/<u', 'https://a.example/u\r\nBcc: x@example.org', 'https://a.example/u\nX: y']) {
      expect(() => listUnsubscribeHeaders(url)).toThrow(/cannot hold/);
    }
  });
});
