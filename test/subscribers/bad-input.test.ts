import { describe, expect, it } from '@jest/globals';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { useTestContext } from '../support/context.js';

// Every bad input to the reader's sign-up and the editor's subscriber API: a 4xx with a clear
// error (JSON for JSON requests, an HTML page for form posts), never a 500, and nothing written:
// no subscriber row, no job queued.

// Far more requests than the sign-up rate limit allows come from one address here.
const t = useTestContext({ env: { SIGNUP_RATE_LIMIT: '100000' } });

type State = { subscribers: number; jobs: number };

async function state(): Promise<State> {
  const { rows } = await t.c.pool.query('SELECT count(*) FROM subscribers');
  const counts = await t.c.queues.readerMail.getJobCounts();
  return { subscribers: Number(rows[0].count), jobs: Object.values(counts).reduce((a, b) => a + b, 0) };
}

const FORM = 'application/x-www-form-urlencoded';

function jsonSignup(body: unknown): InjectOptions {
  return { method: 'POST', url: '/subscribe', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) };
}

function rawJsonSignup(payload: string): InjectOptions {
  return { method: 'POST', url: '/subscribe', headers: { 'content-type': 'application/json' }, payload };
}

function formSignup(payload: string | Buffer): InjectOptions {
  return { method: 'POST', url: '/subscribe', headers: { 'content-type': FORM }, payload };
}

function api(method: 'GET' | 'POST' | 'DELETE', url: string, body?: unknown): InjectOptions {
  return { method, url, headers: { ...t.auth }, ...(body === undefined ? {} : { payload: body as InjectOptions['payload'] }) };
}

/** A 4xx JSON error: exactly {"error":{"code","message"}} (plus optional details). */
function expectJsonError(res: LightMyRequestResponse, status: number, code: string, message?: RegExp) {
  expect(res.statusCode).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  const body = res.json();
  expect(Object.keys(body)).toEqual(['error']);
  expect(body.error.code).toBe(code);
  expect(typeof body.error.message).toBe('string');
  expect(body.error.message.length).toBeGreaterThan(0);
  if (message) expect(body.error.message).toMatch(message);
}

/** A 4xx HTML page whose alert says what went wrong; returns that message. */
function expectHtmlError(res: LightMyRequestResponse, status: number, message?: RegExp): string {
  expect(res.statusCode).toBe(status);
  expect(res.headers['content-type']).toMatch(/^text\/html/);
  expect(res.body.startsWith('<!doctype html>')).toBe(true);
  const alert = /role="alert">([^<]+)</.exec(res.body)?.[1];
  expect(alert).toBeDefined();
  if (message) expect(alert).toMatch(message);
  return alert!;
}

/** Sends the request and checks that it changed nothing. */
async function refused(request: InjectOptions): Promise<LightMyRequestResponse> {
  const before = await state();
  const res = await t.app.inject(request);
  expect(res.statusCode).toBeGreaterThanOrEqual(400);
  expect(res.statusCode).toBeLessThan(500);
  expect(await state()).toEqual(before);
  return res;
}

const NOT_ALLOWED = /characters that are not allowed/;
const INVISIBLE = /invisible characters/;
const LOOK_LIKE = /must look like name@example\.com/;
const BAD_DOMAIN = /domain is not valid/;
const NO_TLD = /top-level domain/;

// 64 + 1 + 190 = 255 characters: one over the limit, with every label and the local part legal.
const TOO_LONG = `${'a'.repeat(64)}@${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(59)}.com`;

/** [what, address, expected message]: refused alike by the form and by JSON. */
const badAddresses: [string, string, RegExp][] = [
  // Malformed
  ['missing @', 'ada.example.com', LOOK_LIKE],
  ['two @', 'ada@lovelace@example.com', LOOK_LIKE],
  ['double dot in the local part', 'ada..lovelace@example.com', LOOK_LIKE],
  ['double dot in the domain', 'ada@example..com', BAD_DOMAIN],
  ['no TLD', 'ada@example', NO_TLD],
  ['one-letter TLD', 'ada@example.c', NO_TLD],
  ['bare IPv4 address as domain', 'ada@127.0.0.1', NO_TLD],
  ['space inside', 'ada lovelace@example.com', /must not contain spaces/],
  ['leading dot', '.ada@example.com', LOOK_LIKE],
  ['trailing dot in the local part', 'ada.@example.com', LOOK_LIKE],
  ['trailing dot after the domain', 'ada@example.com.', BAD_DOMAIN],
  ['leading dot in the domain', 'ada@.example.com', BAD_DOMAIN],
  ['domain label starting with a hyphen', 'ada@-example.com', LOOK_LIKE],
  ['longer than 254 characters', TOO_LONG, /at most 254 characters/],
  ['local part longer than 64 characters', `${'a'.repeat(65)}@example.com`, /at most 64 characters/],
  ['empty', '', /email is required/],
  ['only spaces', '   ', /email is required/],
  ['IP literal', 'ada@[127.0.0.1]', NOT_ALLOWED],
  ['quoted local part', '"ada lovelace"@example.com', NOT_ALLOWED],
  // Header injection
  ['CRLF and a Bcc header', 'ada@example.com\r\nBcc: eve@example.net', NOT_ALLOWED],
  ['trailing LF', 'ada@example.com\n', NOT_ALLOWED],
  ['trailing CR', 'ada@example.com\r', NOT_ALLOWED],
  ['trailing CRLF', 'ada@example.com\r\n', NOT_ALLOWED],
  ['LF in the local part', 'ada\n@example.com', NOT_ALLOWED],
  ['tab', 'ada@example.com\t', NOT_ALLOWED],
  ['NUL', 'ada\u0000@example.com', NOT_ALLOWED],
  ['Unicode line separator and a Bcc header', 'ada@example.com\u2028Bcc: eve@example.net', NOT_ALLOWED],
  ['next-line (NEL) character', 'ada@example.com\u0085', NOT_ALLOWED],
  ['comma-separated second address', 'ada@example.com,eve@example.net', NOT_ALLOWED],
  ['semicolon-separated second address', 'ada@example.com;eve@example.net', NOT_ALLOWED],
  ['display name with angle brackets', 'Ada <ada@example.com>', NOT_ALLOWED],
  ['angle brackets', '<ada@example.com>', NOT_ALLOWED],
  ['Bcc smuggled after a space', 'ada@example.com Bcc:eve@example.net', /must not contain spaces/],
  ['Bcc: as the local part', 'bcc:eve@example.net', LOOK_LIKE],
  // Unicode
  ['non-ASCII local part', 'jöhn@example.com', /plain ASCII/],
  ['fullwidth local part', 'ａｄａ@example.com', /plain ASCII/],
  ['fullwidth @', 'ada＠example.com', LOOK_LIKE],
  ['right-to-left override in the local part', 'ada\u202E@example.com', INVISIBLE],
  ['right-to-left override in the domain', 'ada@exa\u202Emple.com', INVISIBLE],
  ['zero-width space in the local part', 'ad\u200Ba@example.com', INVISIBLE],
  ['zero-width space in the domain', 'ada@exam\u200Bple.com', INVISIBLE],
  ['zero-width joiner before the TLD', 'ada@example\u200D.com', INVISIBLE],
  ['soft hyphen in the domain', 'ada@exam\u00ADple.com', INVISIBLE],
  ['byte-order mark in front', '\uFEFFada@example.com', INVISIBLE],
  ['non-breaking space at the end', 'ada@example.com\u00A0', /must not contain spaces/],
  ['emoji domain without a TLD', 'ada@😀', BAD_DOMAIN],
  ['emoji label', 'ada@😀.com', BAD_DOMAIN],
  ['emoji TLD', 'ada@example.😀', BAD_DOMAIN],
  ['broken punycode', 'ada@xn--.com', BAD_DOMAIN],
];

describe('POST /subscribe refuses a bad address', () => {
  it.each(badAddresses)('as JSON: %s', async (_what, email, message) => {
    const res = await refused(jsonSignup({ email, name: 'Ada' }));
    expectJsonError(res, 400, 'invalid_input', message);
    expect(res.json().error.details).toEqual({ field: 'email' });
  });

  it.each(badAddresses)('as a form: %s', async (_what, email, message) => {
    const res = await refused(formSignup(`email=${encodeURIComponent(email)}&name=Ada`));
    expectHtmlError(res, 400, message);
    // The form comes back, with the address escaped, never as markup.
    expect(res.body).toContain('<form method="post" action="/subscribe"');
    expect(res.body).toContain('aria-invalid="true"');
    if (/[<>"]/.test(email)) expect(res.body).not.toContain(email);
  });

  it('as JSON: a lone surrogate in the domain', async () => {
    // JSON.stringify writes the lone surrogate as the escape \ud800, which JSON.parse restores.
    const res = await refused(jsonSignup({ email: 'ada@exa\uD800mple.com' }));
    expectJsonError(res, 400, 'invalid_input', BAD_DOMAIN);
  });
});

type Case = { name: string; request: () => InjectOptions; status: number; code: string; message?: RegExp };

const formCases: Omit<Case, 'code'>[] = [
  { name: '%0d%0a and a Bcc header', request: () => formSignup('email=ada%40example.com%0d%0aBcc%3A%20eve%40example.net'), status: 400, message: NOT_ALLOWED },
  { name: 'trailing %0A', request: () => formSignup('email=ada%40example.com%0A'), status: 400, message: NOT_ALLOWED },
  { name: 'trailing %0D', request: () => formSignup('email=ada%40example.com%0D'), status: 400, message: NOT_ALLOWED },
  { name: '%2C second address', request: () => formSignup('email=ada%40example.com%2Ceve%40example.net'), status: 400, message: NOT_ALLOWED },
  { name: 'invalid UTF-8 escape (%FF)', request: () => formSignup('email=ada%FF%40example.com'), status: 400 },
  {
    name: 'raw invalid UTF-8 bytes',
    request: () => formSignup(Buffer.concat([Buffer.from('email=ada'), Buffer.from([0xff, 0xfe]), Buffer.from('%40example.com')])),
    status: 400,
    message: /plain ASCII/,
  },
  { name: 'UTF-8-encoded lone surrogate (%ED%A0%80)', request: () => formSignup('email=ada%40exa%ED%A0%80mple.com'), status: 400 },
  { name: 'fullwidth @ percent-encoded', request: () => formSignup('email=ada%EF%BC%A0example.com'), status: 400, message: LOOK_LIKE },
  { name: 'missing email field', request: () => formSignup('name=Ada'), status: 400, message: /email is required/ },
  { name: 'empty email field', request: () => formSignup('email=&name=Ada'), status: 400, message: /email is required/ },
  { name: 'empty body', request: () => formSignup(''), status: 400 },
  { name: 'email given twice', request: () => formSignup('email=ada%40example.com&email=eve%40example.net'), status: 400 },
  { name: 'name given twice', request: () => formSignup('email=ada%40example.com&name=Ada&name=Eve'), status: 400 },
  { name: 'body over 64 KB', request: () => formSignup(`email=ada%40example.com&name=${'x'.repeat(70 * 1024)}`), status: 413, message: /too large/ },
];

describe('POST /subscribe refuses a bad form post with an HTML page', () => {
  it.each(formCases)('$name', async ({ request, status, message }) => {
    const res = await refused(request());
    expectHtmlError(res, status, message);
  });
});

const longName = 'x'.repeat(70 * 1024);
let deep = '"ada@example.com"';
for (let i = 0; i < 5000; i++) deep = `[${deep}]`;

const jsonCases: Case[] = [
  { name: 'email is a number', request: () => jsonSignup({ email: 42 }), status: 400, code: 'invalid_input', message: /email must be string/ },
  { name: 'email is a boolean', request: () => jsonSignup({ email: true }), status: 400, code: 'invalid_input', message: /email must be string/ },
  { name: 'email is null', request: () => jsonSignup({ email: null }), status: 400, code: 'invalid_input', message: /email must be string/ },
  { name: 'email is an array', request: () => jsonSignup({ email: ['ada@example.com'] }), status: 400, code: 'invalid_input', message: /email must be string/ },
  {
    name: 'email is an object',
    request: () => jsonSignup({ email: { address: 'ada@example.com' } }),
    status: 400,
    code: 'invalid_input',
    message: /email must be string/,
  },
  { name: 'email is deeply nested arrays', request: () => rawJsonSignup(`{"email":${deep}}`), status: 400, code: 'invalid_input' },
  {
    name: 'name is a number',
    request: () => jsonSignup({ email: 'ada@example.com', name: 42 }),
    status: 400,
    code: 'invalid_input',
    message: /name must be string/,
  },
  {
    name: 'name is an array',
    request: () => jsonSignup({ email: 'ada@example.com', name: ['Ada'] }),
    status: 400,
    code: 'invalid_input',
    message: /name must be string/,
  },
  { name: 'honeypot is a number', request: () => jsonSignup({ email: 'ada@example.com', website: 1 }), status: 400, code: 'invalid_input' },
  { name: 'email missing', request: () => jsonSignup({ name: 'Ada' }), status: 400, code: 'invalid_input', message: /email is required/ },
  { name: 'empty object', request: () => jsonSignup({}), status: 400, code: 'invalid_input', message: /email is required/ },
  { name: 'top-level array', request: () => jsonSignup([{ email: 'ada@example.com' }]), status: 400, code: 'invalid_input', message: /must be object/ },
  { name: 'top-level string', request: () => jsonSignup('ada@example.com'), status: 400, code: 'invalid_input', message: /must be object/ },
  { name: 'top-level null', request: () => rawJsonSignup('null'), status: 400, code: 'invalid_input', message: /must be object/ },
  {
    name: 'broken JSON (unterminated)',
    request: () => rawJsonSignup('{"email": "ada@example.com"'),
    status: 400,
    code: 'invalid_json',
    message: /not valid JSON/,
  },
  { name: 'broken JSON (single quotes)', request: () => rawJsonSignup("{'email': 'ada@example.com'}"), status: 400, code: 'invalid_json' },
  { name: 'trailing garbage after the JSON', request: () => rawJsonSignup('{"email":"ada@example.com"} x'), status: 400, code: 'invalid_json' },
  {
    name: 'prototype pollution attempt',
    request: () => rawJsonSignup('{"email":"ada@example.com","__proto__":{"admin":true}}'),
    status: 400,
    code: 'invalid_json',
  },
  { name: 'empty JSON body', request: () => rawJsonSignup(''), status: 400, code: 'invalid_json', message: /empty/ },
  {
    name: 'invalid UTF-8 bytes in a JSON string',
    request: () => ({ ...rawJsonSignup(''), payload: Buffer.concat([Buffer.from('{"email":"ada'), Buffer.from([0xff]), Buffer.from('@example.com"}')]) }),
    status: 400,
    code: 'invalid_input',
    message: /plain ASCII/,
  },
  { name: 'JSON body over 64 KB', request: () => jsonSignup({ email: 'ada@example.com', name: longName }), status: 413, code: 'payload_too_large' },
  { name: 'email over 64 KB', request: () => jsonSignup({ email: `${'a'.repeat(70 * 1024)}@example.com` }), status: 413, code: 'payload_too_large' },
  {
    name: 'email of 2,000 characters',
    request: () => jsonSignup({ email: `${'a'.repeat(2000)}@example.com` }),
    status: 400,
    code: 'invalid_input',
    message: /at most 254 characters/,
  },
  // Content types: only JSON and forms are parsed; the answer follows Accept when the body is not JSON.
  {
    name: 'text/plain',
    request: () => ({ method: 'POST', url: '/subscribe', headers: { 'content-type': 'text/plain', accept: 'application/json' }, payload: 'ada@example.com' }),
    status: 415,
    code: 'unsupported_media_type',
  },
  {
    name: 'application/xml',
    request: () => ({
      method: 'POST',
      url: '/subscribe',
      headers: { 'content-type': 'application/xml', accept: 'application/json' },
      payload: '<email>ada@example.com</email>',
    }),
    status: 415,
    code: 'unsupported_media_type',
  },
  {
    name: 'application/merge-patch+json',
    request: () => ({ method: 'POST', url: '/subscribe', headers: { 'content-type': 'application/merge-patch+json' }, payload: '{"email":"ada@example.com"}' }),
    status: 415,
    code: 'unsupported_media_type',
  },
  {
    name: 'multipart/form-data',
    request: () => ({
      method: 'POST',
      url: '/subscribe',
      headers: { 'content-type': 'multipart/form-data; boundary=XyZ', accept: 'application/json' },
      payload: '--XyZ\r\nContent-Disposition: form-data; name="email"\r\n\r\nada@example.com\r\n--XyZ--\r\n',
    }),
    status: 415,
    code: 'unsupported_media_type',
  },
  {
    name: 'no content type',
    request: () => ({ method: 'POST', url: '/subscribe', headers: { accept: 'application/json' }, payload: 'email=ada%40example.com' }),
    status: 415,
    code: 'unsupported_media_type',
  },
];

describe('POST /subscribe refuses a bad JSON request with a JSON error', () => {
  it.each(jsonCases)('$name', async ({ request, status, code, message }) => {
    const res = await refused(request());
    expectJsonError(res, status, code, message);
  });

  it.each([
    ['text/plain', 'text/plain'],
    ['application/xml', 'application/xml'],
    ['multipart/form-data', 'multipart/form-data; boundary=XyZ'],
  ])('answers a browser posting %s with a 415 page', async (_what, type) => {
    const res = await refused({
      method: 'POST',
      url: '/subscribe',
      headers: { 'content-type': type, accept: 'text/html' },
      payload: 'email=ada%40example.com',
    });
    expectHtmlError(res, 415, /unsupported content type/);
  });
});

const editorCases: Case[] = [
  {
    name: 'POST: malformed email',
    request: () => api('POST', '/api/subscribers', { email: 'not-an-address' }),
    status: 400,
    code: 'invalid_input',
    message: LOOK_LIKE,
  },
  {
    name: 'POST: email with CRLF and Bcc',
    request: () => api('POST', '/api/subscribers', { email: 'ada@example.com\r\nBcc: eve@example.net' }),
    status: 400,
    code: 'invalid_input',
    message: NOT_ALLOWED,
  },
  {
    name: 'POST: email with a zero-width space',
    request: () => api('POST', '/api/subscribers', { email: 'ada@exam\u200Bple.com' }),
    status: 400,
    code: 'invalid_input',
    message: INVISIBLE,
  },
  { name: 'POST: email is a number', request: () => api('POST', '/api/subscribers', { email: 42 }), status: 400, code: 'invalid_input' },
  { name: 'POST: email missing', request: () => api('POST', '/api/subscribers', { name: 'Ada' }), status: 400, code: 'invalid_input', message: /email/ },
  {
    name: 'POST: name is a number',
    request: () => api('POST', '/api/subscribers', { email: 'ada@example.com', name: 42 }),
    status: 400,
    code: 'invalid_input',
  },
  {
    name: 'POST: consentAt is prose',
    request: () => api('POST', '/api/subscribers', { email: 'ada@example.com', consentAt: 'yesterday' }),
    status: 400,
    code: 'invalid_input',
    message: /consentAt/,
  },
  {
    name: 'POST: consentAt month 13',
    request: () => api('POST', '/api/subscribers', { email: 'ada@example.com', consentAt: '2024-13-01T00:00:00Z' }),
    status: 400,
    code: 'invalid_input',
    message: /consentAt/,
  },
  {
    name: 'POST: consentAt 30 February',
    request: () => api('POST', '/api/subscribers', { email: 'ada@example.com', consentAt: '2024-02-30T10:00:00Z' }),
    status: 400,
    code: 'invalid_input',
    message: /consentAt/,
  },
  {
    name: 'POST: consentAt without a time',
    request: () => api('POST', '/api/subscribers', { email: 'ada@example.com', consentAt: '2024-02-01' }),
    status: 400,
    code: 'invalid_input',
    message: /consentAt/,
  },
  {
    name: 'POST: consentAt is a number',
    request: () => api('POST', '/api/subscribers', { email: 'ada@example.com', consentAt: 1700000000 }),
    status: 400,
    code: 'invalid_input',
    message: /consentAt/,
  },
  {
    name: 'POST: consentIp is not an IP',
    request: () => api('POST', '/api/subscribers', { email: 'ada@example.com', consentIp: 'not-an-ip' }),
    status: 400,
    code: 'invalid_input',
    message: /consentIp/,
  },
  {
    name: 'POST: broken JSON',
    request: () => ({ ...api('POST', '/api/subscribers'), headers: { ...t.auth, 'content-type': 'application/json' }, payload: '{"email":' }),
    status: 400,
    code: 'invalid_json',
  },
  {
    name: 'POST: text/plain',
    request: () => ({ ...api('POST', '/api/subscribers'), headers: { ...t.auth, 'content-type': 'text/plain' }, payload: 'ada@example.com' }),
    status: 415,
    code: 'unsupported_media_type',
  },
  { name: 'GET list: unknown status', request: () => api('GET', '/api/subscribers?status=nope'), status: 400, code: 'invalid_input', message: /status/ },
  {
    name: 'GET list: status given twice',
    request: () => api('GET', '/api/subscribers?status=active&status=pending'),
    status: 400,
    code: 'invalid_input',
    message: /status/,
  },
  {
    name: 'GET list: unknown source',
    request: () => api('GET', '/api/subscribers?source=carrier-pigeon'),
    status: 400,
    code: 'invalid_input',
    message: /source/,
  },
  { name: 'GET list: limit=0', request: () => api('GET', '/api/subscribers?limit=0'), status: 400, code: 'invalid_input', message: /limit/ },
  { name: 'GET list: limit=10000', request: () => api('GET', '/api/subscribers?limit=10000'), status: 400, code: 'invalid_input', message: /limit/ },
  { name: 'GET list: limit=-1', request: () => api('GET', '/api/subscribers?limit=-1'), status: 400, code: 'invalid_input', message: /limit/ },
  { name: 'GET list: limit=1.5', request: () => api('GET', '/api/subscribers?limit=1.5'), status: 400, code: 'invalid_input', message: /limit/ },
  { name: 'GET list: limit=ten', request: () => api('GET', '/api/subscribers?limit=ten'), status: 400, code: 'invalid_input', message: /limit/ },
  { name: 'GET list: malformed cursor', request: () => api('GET', '/api/subscribers?cursor=..%2F..'), status: 400, code: 'invalid_input', message: /cursor/ },
  {
    name: 'GET list: createdAfter is prose',
    request: () => api('GET', '/api/subscribers?createdAfter=last%20week'),
    status: 400,
    code: 'invalid_input',
    message: /createdAfter/,
  },
  {
    name: 'GET list: NUL in the email filter',
    request: () => api('GET', '/api/subscribers?email=ada%00'),
    status: 400,
    code: 'invalid_input',
    message: /email must not contain NUL/,
  },
  {
    name: 'GET export: unknown status',
    request: () => api('GET', '/api/subscribers/export?status=nope'),
    status: 400,
    code: 'invalid_input',
    message: /status/,
  },
  { name: 'GET export: NUL in the email filter', request: () => api('GET', '/api/subscribers/export?email=%00'), status: 400, code: 'invalid_input' },
  { name: 'GET one: non-numeric id', request: () => api('GET', '/api/subscribers/abc'), status: 400, code: 'invalid_input', message: /id/ },
  { name: 'GET one: id 0', request: () => api('GET', '/api/subscribers/0'), status: 400, code: 'invalid_input', message: /id/ },
  { name: 'GET one: negative id', request: () => api('GET', '/api/subscribers/-1'), status: 400, code: 'invalid_input', message: /id/ },
  { name: 'GET one: fractional id', request: () => api('GET', '/api/subscribers/1.5'), status: 400, code: 'invalid_input', message: /id/ },
  { name: 'GET one: id beyond 2^53', request: () => api('GET', '/api/subscribers/99999999999999999999'), status: 400, code: 'invalid_input', message: /id/ },
  { name: 'DELETE: non-numeric id', request: () => api('DELETE', '/api/subscribers/abc'), status: 400, code: 'invalid_input', message: /id/ },
];

describe('the editor API refuses bad input with a JSON error', () => {
  it.each(editorCases)('$name', async ({ request, status, code, message }) => {
    const res = await refused(request());
    expectJsonError(res, status, code, message);
  });
});

describe('accepted, but cleaned', () => {
  const signup = async (body: Record<string, string>) => {
    const res = await t.app.inject(jsonSignup(body));
    expect(res.statusCode).toBe(202);
    const { rows } = await t.c.pool.query('SELECT email, name, char_length(name) AS len FROM subscribers WHERE email_normalized = $1', [
      body.email!.toLowerCase(),
    ]);
    expect(rows).toHaveLength(1);
    return rows[0] as { email: string; name: string | null; len: number | null };
  };

  it('caps an oversized name at 100 characters instead of refusing it', async () => {
    const row = await signup({ email: 'long.name@example.com', name: 'N'.repeat(5000) });
    expect(row.len).toBe(100);
    expect(row.name).toBe('N'.repeat(100));
  });

  it('caps a name by characters, never splitting an emoji', async () => {
    const row = await signup({ email: 'emoji.name@example.com', name: '😀'.repeat(150) });
    expect(row.len).toBe(100);
    expect(row.name).toBe('😀'.repeat(100));
  });

  it('caps an oversized name sent through the form', async () => {
    const res = await t.app.inject(formSignup(`email=form.name%40example.com&name=${'F'.repeat(1000)}`));
    expect(res.statusCode).toBe(303);
    const { rows } = await t.c.pool.query(`SELECT char_length(name) AS len FROM subscribers WHERE email_normalized = 'form.name@example.com'`);
    expect(rows).toEqual([{ len: 100 }]);
  });

  it('strips control and invisible characters from a name', async () => {
    const row = await signup({ email: 'control.name@example.com', name: '\tAda\u0000\u0007 Love\u001b[31mlace\r\nBcc: x\u202E\u200B\u007f' });
    expect(row.name).toBe('Ada Love [31mlace Bcc: x');
  });

  it('stores no name when nothing but control characters was given', async () => {
    const row = await signup({ email: 'blank.name@example.com', name: '\u0000\r\n\u200B\t' });
    expect(row.name).toBeNull();
  });

  it('stores a fullwidth domain in the canonical form it is delivered to', async () => {
    const res = await t.app.inject(jsonSignup({ email: 'Wide@ｅｘａｍｐｌｅ．ｏｒｇ' }));
    expect(res.statusCode).toBe(202);
    const { rows } = await t.c.pool.query(`SELECT email, email_normalized FROM subscribers WHERE email_normalized = 'wide@example.org'`);
    expect(rows).toEqual([{ email: 'Wide@example.org', email_normalized: 'wide@example.org' }]);
  });
});

describe('behind a trusted proxy', () => {
  // app.inject connects from 127.0.0.1: the one proxy in front.
  const proxied = useTestContext({ env: { TRUST_PROXY: '1' } });

  it.each([
    ['not an address at all', 'not-an-ip'],
    ['an IPv6 address with a zone', 'fe80::1%eth0'],
  ])('keeps no consent IP when X-Forwarded-For is %s, and still takes the sign-up', async (_what, forwarded) => {
    const email = `proxied-${forwarded.length}@example.com`;
    const res = await proxied.app.inject({ ...jsonSignup({ email }), headers: { 'content-type': 'application/json', 'x-forwarded-for': forwarded } });
    expect(res.statusCode).toBe(202);
    const { rows } = await proxied.c.pool.query('SELECT consent_ip FROM subscribers WHERE email_normalized = $1', [email]);
    expect(rows).toEqual([{ consent_ip: null }]);
  });

  it('keeps the forwarded client IP when it is one', async () => {
    const res = await proxied.app.inject({
      ...jsonSignup({ email: 'proxied-ok@example.com' }),
      headers: { 'content-type': 'application/json', 'x-forwarded-for': '203.0.113.7' },
    });
    expect(res.statusCode).toBe(202);
    const { rows } = await proxied.c.pool.query(`SELECT host(consent_ip) AS ip FROM subscribers WHERE email_normalized = 'proxied-ok@example.com'`);
    expect(rows).toEqual([{ ip: '203.0.113.7' }]);
  });
});
