import { Readable } from 'node:stream';
import v8 from 'node:v8';
import vm from 'node:vm';
import { beforeEach, describe, expect, it } from '@jest/globals';
import { parse } from 'csv-parse/sync';
import { exportColumns } from '../../src/subscribers/csv-export.js';
import type { ImportReport } from '../../src/subscribers/csv-import.js';
import { useTestContext } from '../support/context.js';
import { truncate } from '../support/truncate.js';

const t = useTestContext();

// A full collection before each memory sample, so the figures are live data, not garbage that
// the collector has not got round to yet.
v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;

const reset = () => truncate(t.c.pool, 'subscribers, suppressions');

type Report = ImportReport;

function upload(body: string | Buffer | Readable, headers: Record<string, string> = {}) {
  return t.app.inject({
    method: 'POST',
    url: '/api/subscribers/import',
    headers: { ...t.auth, 'content-type': 'text/csv', ...(body instanceof Readable ? { 'transfer-encoding': 'chunked' } : {}), ...headers },
    payload: body,
  });
}

async function importOk(body: string | Buffer | Readable, headers: Record<string, string> = {}): Promise<Report> {
  const res = await upload(body, headers);
  if (res.statusCode !== 200) throw new Error(`import answered ${res.statusCode}: ${res.body.slice(0, 2000)}`);
  const report = res.json() as Report;
  expect(report.rows).toBe(report.accepted + report.rejected);
  expect(Object.values(report.rejectedByReason).reduce((a, b) => a + b, 0)).toBe(report.rejected);
  expect(report.rejections.map((r) => r.line)).toEqual([...report.rejections.map((r) => r.line)].sort((a, b) => a - b));
  return report;
}

async function exportRows(query = ''): Promise<{ text: string; rows: Record<string, string>[] }> {
  const res = await t.app.inject({ method: 'GET', url: `/api/subscribers/export${query}`, headers: t.auth });
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toBe('text/csv; charset=utf-8');
  expect(res.headers['content-disposition']).toMatch(/^attachment; filename="subscribers-\d{4}-\d{2}-\d{2}\.csv"$/);
  const text = res.body;
  const rows = parse(text, { columns: true }) as Record<string, string>[];
  return { text, rows };
}

const subscribers = async () =>
  (await t.c.pool.query('SELECT email, email_normalized, name, status, consent_source, consent_ip, consent_user_agent FROM subscribers ORDER BY id')).rows;

/** Readers in every state, as sign-ups, bounces, complaints and an erasure leave them. */
async function seedStates(): Promise<void> {
  await t.c.pool.query(
    `INSERT INTO subscribers (email, email_normalized, status, consent_source)
     VALUES ('active@example.com', 'active@example.com', 'active', 'form'),
            ('unsub@example.com', 'unsub@example.com', 'unsubscribed', 'form'),
            ('bounced@example.com', 'bounced@example.com', 'bounced', 'form'),
            ('complained@example.com', 'complained@example.com', 'complained', 'form'),
            ('pending@example.com', 'pending@example.com', 'pending', 'form'),
            ('erased@example.com', 'erased@example.com', 'active', 'form')`,
  );
  const { rows } = await t.c.pool.query(`SELECT id FROM subscribers WHERE email = 'erased@example.com'`);
  const erase = await t.app.inject({ method: 'DELETE', url: `/api/subscribers/${rows[0].id}`, headers: t.auth });
  expect(erase.statusCode).toBe(204);
}

/**
 * A CSV of `rows` readers generated as it is read, never whole in memory: the header, then
 * lines of about `lineBytes` bytes (an ignored `notes` column pads them).
 */
function generatedCsv(rows: number, lineBytes: number, first = 0): { stream: Readable; bytes: number } {
  const line = (i: number) => {
    const head = `reader${first + i}@bulk.example.com,Reader ${first + i},`;
    return `${head}${'n'.repeat(Math.max(1, lineBytes - head.length - 1))}\n`;
  };
  let bytes = 'email,name,notes\n'.length;
  for (let i = 0; i < rows; i++) bytes += line(i).length;
  const stream = Readable.from(
    (function* () {
      yield Buffer.from('email,name,notes\n');
      for (let i = 0; i < rows; i += 100) {
        let chunk = '';
        for (let j = i; j < Math.min(rows, i + 100); j++) chunk += line(j);
        yield Buffer.from(chunk);
      }
    })(),
  );
  return { stream, bytes };
}

describe('POST /api/subscribers/import: the file', () => {
  beforeEach(reset);

  it('finds the email column in a header of any case, after a BOM, among columns it ignores', async () => {
    const csv = '\uFEFFNotes, EMAIL ,Name,Phone\r\nmet at a fair,ada@example.com,Ada Lovelace,+44 1\r\n,Grace@Example.ORG,Grace,\r\n';
    const report = await importOk(csv, { 'user-agent': 'ImportTest/1.0' });
    expect(report).toEqual({ rows: 2, accepted: 2, rejected: 0, rejectedByReason: {}, rejections: [], rejectionsTruncated: false });
    expect(await subscribers()).toEqual([
      {
        email: 'ada@example.com',
        email_normalized: 'ada@example.com',
        name: 'Ada Lovelace',
        status: 'active',
        consent_source: 'import',
        consent_ip: '127.0.0.1',
        consent_user_agent: 'ImportTest/1.0',
      },
      {
        email: 'Grace@Example.ORG',
        email_normalized: 'grace@example.org',
        name: 'Grace',
        status: 'active',
        consent_source: 'import',
        consent_ip: '127.0.0.1',
        consent_user_agent: 'ImportTest/1.0',
      },
    ]);

    // A BOM as bytes, and only an email column.
    const bytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('Email\nhopper@example.org\n')]);
    expect(await importOk(bytes)).toMatchObject({ rows: 1, accepted: 1 });
  });

  it('takes text/csv with parameters and application/csv', async () => {
    expect(await importOk('email\none@example.com\n', { 'content-type': 'text/csv; charset=utf-8' })).toMatchObject({ accepted: 1 });
    expect(await importOk('email\ntwo@example.com\n', { 'content-type': 'application/csv' })).toMatchObject({ accepted: 1 });
    expect(await importOk('email\nthree@example.com\n', { 'content-type': 'Text/CSV;header=present' })).toMatchObject({ accepted: 1 });
  });

  it('refuses any other body with 415, and a missing token with 401', async () => {
    const cases: [Record<string, string>, string][] = [
      [{ 'content-type': 'application/json' }, JSON.stringify({ email: 'json@example.com' })],
      [{ 'content-type': 'application/x-www-form-urlencoded' }, 'email=form%40example.com'],
      [{ 'content-type': 'text/plain' }, 'email\nplain@example.com\n'],
      [{ 'content-type': 'multipart/form-data; boundary=x' }, '--x\r\n\r\nemail\r\n--x--\r\n'],
      [{ 'content-type': 'text/csv-schema' }, 'email\nlookalike@example.com\n'],
    ];
    for (const [headers, body] of cases) {
      const res = await upload(body, headers);
      expect([headers, res.statusCode, res.json().error.code]).toEqual([headers, 415, 'unsupported_media_type']);
      expect(res.json().error.message).toContain('text/csv');
    }
    const noType = await t.app.inject({ method: 'POST', url: '/api/subscribers/import', headers: t.auth, payload: Buffer.from('email\nnotype@example.com\n') });
    expect(noType.statusCode).toBe(415);

    const anonymous = await t.app.inject({
      method: 'POST',
      url: '/api/subscribers/import',
      headers: { 'content-type': 'text/csv' },
      payload: 'email\nanon@example.com\n',
    });
    expect(anonymous.statusCode).toBe(401);
    expect(await subscribers()).toEqual([]);
  });

  it('answers 400 invalid_csv when there is no email column or no header at all; a header alone is an empty import', async () => {
    for (const body of [
      'name,address\nAda,ada@example.com\n',
      'ada@example.com,Ada\ngrace@example.org,Grace\n',
      'e-mail\nx@example.com\n',
      'name\n',
      '',
      '\n\n',
    ]) {
      const res = await upload(body);
      expect([body, res.statusCode, res.json().error.code]).toEqual([body, 400, 'invalid_csv']);
    }
    expect(await subscribers()).toEqual([]);
    expect(await importOk('email,name\n')).toEqual({ rows: 0, accepted: 0, rejected: 0, rejectedByReason: {}, rejections: [], rejectionsTruncated: false });
  });

  it('reads quoted fields with commas, quotes and line breaks, and numbers lines as an editor sees them', async () => {
    const csv = [
      'email,name',
      '"quoted@example.com","Lovelace, Ada"',
      'escaped@example.com,"She said ""hi"""',
      '"multi@example.com","Line one',
      'Line two"',
      '',
      'first bad,x',
      '"two-line',
      'bad@example.com",y',
      '  spaced@example.com  ,  Trimmed Name  ',
      'last bad,z',
    ];
    for (const eol of ['\n', '\r\n', '\r']) {
      await reset();
      const report = await importOk(csv.join(eol) + eol);
      expect([eol, report.rows, report.accepted]).toEqual([eol, 7, 4]);
      expect([eol, report.rejections.map((r) => [r.line, r.reason])]).toEqual([
        eol,
        [
          [7, 'invalid_email'],
          [8, 'invalid_email'],
          [11, 'invalid_email'],
        ],
      ]);
      expect((await subscribers()).map((s) => [s.email, s.name])).toEqual([
        ['quoted@example.com', 'Lovelace, Ada'],
        ['escaped@example.com', 'She said "hi"'],
        ['multi@example.com', 'Line one Line two'],
        ['spaced@example.com', 'Trimmed Name'],
      ]);
    }
  });

  it('cleans names of control and invisible characters and caps their length', async () => {
    const long = 'L'.repeat(150);
    const csv = `email,name\nbell@example.com,"\u0007Ada\u0000 \tLove\u200blace\u202e "\ntab@example.com,\t\nlong@example.com,${long}\nemoji@example.com,Zoë 🎉 Ü\n`;
    expect(await importOk(csv)).toMatchObject({ rows: 4, accepted: 4 });
    expect((await subscribers()).map((s) => s.name)).toEqual(['Ada Love lace', null, 'L'.repeat(100), 'Zoë 🎉 Ü']);
  });

  it('answers 400 invalid_csv, not 500, for a malformed file, and keeps the rows read before the fault', async () => {
    const unclosed = await upload('email,name\ngood@example.com,Good\nbroken@example.com,"unclosed\nnext@example.com,Next\n');
    expect(unclosed.statusCode).toBe(400);
    const error = unclosed.json().error;
    expect(error.code).toBe('invalid_csv');
    expect(error.message).toMatch(/quote/i);
    expect(error.details.partial).toMatchObject({ rows: 1, accepted: 1, rejected: 0 });
    expect((await subscribers()).map((s) => s.email)).toEqual(['good@example.com']);

    const faults = ['email,name\n"after@example.com"x,y\n', `email,name\nhuge@example.com,"${'h'.repeat(70 * 1024)}"\n`, 'email,name\n"opened@example.com,x\n'];
    for (const body of faults) {
      const res = await upload(body);
      expect([body.slice(0, 40), res.statusCode, res.json().error.code]).toEqual([body.slice(0, 40), 400, 'invalid_csv']);
    }

    // A quote inside an unquoted field is kept as written, as spreadsheets do.
    await reset();
    const stray = await importOk('email,name\nrock@example.com,Dwayne "The Rock" Johnson\nstray"quote@example.com,x\n');
    expect(stray).toMatchObject({ rows: 2, accepted: 1, rejections: [{ line: 3, email: 'stray"quote@example.com', reason: 'invalid_email' }] });
    expect((await subscribers()).map((s) => s.name)).toEqual(['Dwayne "The Rock" Johnson']);
  });
});

describe('POST /api/subscribers/import: the report', () => {
  beforeEach(reset);

  it('counts every rejection by reason and lists each with its line; never revives a suppressed reader', async () => {
    await seedStates();
    const csv = [
      'email,name', //                        1
      'new@example.com,New', //               2 accepted
      'not-an-address,Bad', //                3 invalid_email
      'NEW@example.com,Again', //             4 duplicate_in_file
      'active@example.com,Renamed', //        5 already_active
      'unsub@example.com,Back', //            6 unsubscribed
      '', //                                  7 (blank)
      'Bounced@Example.com,', //              8 bounced
      'complained@example.com,', //           9 complained
      'erased@example.com,Returned', //       10 erased
      'pending@example.com,Now Active', //    11 accepted: the editor's word activates a pending reader
      ',no address', //                       12 invalid_email
      '"x@example.com\r\nBcc: y@example.com"', // 13-14 invalid_email (a header injection attempt)
      'late@example.com', //                  15 accepted
    ].join('\n');
    const report = await importOk(csv);
    expect(report).toMatchObject({
      rows: 12,
      accepted: 3,
      rejected: 9,
      rejectedByReason: { invalid_email: 3, duplicate_in_file: 1, already_active: 1, unsubscribed: 1, bounced: 1, complained: 1, erased: 1 },
      rejectionsTruncated: false,
    });
    expect(report.rejections.map((r) => [r.line, r.email, r.reason])).toEqual([
      [3, 'not-an-address', 'invalid_email'],
      [4, 'NEW@example.com', 'duplicate_in_file'],
      [5, 'active@example.com', 'already_active'],
      [6, 'unsub@example.com', 'unsubscribed'],
      [8, 'Bounced@Example.com', 'bounced'],
      [9, 'complained@example.com', 'complained'],
      [10, 'erased@example.com', 'erased'],
      [12, '', 'invalid_email'],
      [13, 'x@example.com\nBcc: y@example.com', 'invalid_email'],
    ]);
    for (const r of report.rejections) expect(r.message).toEqual(expect.any(String));

    const states = Object.fromEntries((await subscribers()).map((s) => [s.email_normalized, [s.status, s.name, s.consent_source]]));
    expect(states).toEqual({
      'active@example.com': ['active', null, 'form'],
      'unsub@example.com': ['unsubscribed', null, 'form'],
      'bounced@example.com': ['bounced', null, 'form'],
      'complained@example.com': ['complained', null, 'form'],
      'pending@example.com': ['active', 'Now Active', 'import'],
      'new@example.com': ['active', 'New', 'import'],
      'late@example.com': ['active', null, 'import'],
    });
  });

  it('refuses an erased address even when the reader signed up again and has not confirmed', async () => {
    await seedStates();
    expect((await t.app.inject({ method: 'POST', url: '/subscribe', payload: { email: 'erased@example.com' } })).statusCode).toBe(202);
    const report = await importOk('email\nerased@example.com\n');
    expect(report).toMatchObject({ accepted: 0, rejectedByReason: { erased: 1 } });
    expect(report.rejections).toEqual([{ line: 2, email: 'erased@example.com', reason: 'erased', message: expect.any(String) }]);
    expect((await subscribers()).find((s) => s.email === 'erased@example.com')).toMatchObject({ status: 'pending', consent_source: 'form' });
  });

  it('honours a status column: rows marked pending, unsubscribed, bounced or complained are not added', async () => {
    const csv =
      'email,status\nok@example.com,active\np@example.com,pending\nu@example.com,Unsubscribed\nb@example.com,bounced\nc@example.com,complained\nblank@example.com,\n';
    const report = await importOk(csv);
    expect(report).toMatchObject({ rows: 6, accepted: 2, rejectedByReason: { pending: 1, unsubscribed: 1, bounced: 1, complained: 1 } });
    expect(report.rejections.map((r) => [r.line, r.reason])).toEqual([
      [3, 'pending'],
      [4, 'unsubscribed'],
      [5, 'bounced'],
      [6, 'complained'],
    ]);
    expect((await subscribers()).map((s) => s.email)).toEqual(['ok@example.com', 'blank@example.com']);
  });

  it('finds repeats and keeps line numbers exact across batches', async () => {
    const lines = ['email,name'];
    for (let i = 0; i < 2500; i++) lines.push(`bulk${i}@example.com,Bulk ${i}`);
    lines[1500] = '"bulk1499@example.com","Two\nLines"';
    lines[1800] = 'broken-at-1801,x';
    lines[2400] = 'BULK0@example.com,Repeat of line 2';
    lines.push('bulk1700@example.com,Repeat of line 1702');
    const csv = `${lines.join('\n')}\n`;
    const report = await importOk(csv);
    expect(report).toMatchObject({ rows: 2501, accepted: 2498, rejected: 3, rejectedByReason: { invalid_email: 1, duplicate_in_file: 2 } });
    // Line 1501 spans two lines, so every later row sits one line further down.
    expect(report.rejections.map((r) => [r.line, r.email, r.reason])).toEqual([
      [1802, 'broken-at-1801', 'invalid_email'],
      [2402, 'BULK0@example.com', 'duplicate_in_file'],
      [2503, 'bulk1700@example.com', 'duplicate_in_file'],
    ]);
    const repeated = (await t.c.pool.query(`SELECT name FROM subscribers WHERE email_normalized IN ('bulk0@example.com', 'bulk1700@example.com') ORDER BY id`))
      .rows;
    expect(repeated).toEqual([{ name: 'Bulk 0' }, { name: 'Bulk 1700' }]);

    // A second run reports the file's own repeats as such, the rest as already subscribed.
    const again = await importOk(csv);
    expect(again).toMatchObject({ accepted: 0, rejectedByReason: { already_active: 2498, invalid_email: 1, duplicate_in_file: 2 } });
  });

  it('lists the first 1,000 rejections in line order and counts all of them', async () => {
    const lines = ['email'];
    for (let i = 0; i < 1500; i++) lines.push(i % 3 === 0 ? `fine${i}@example.com` : `bad${i}`);
    await t.c.pool.query(
      `INSERT INTO subscribers (email, email_normalized, status, consent_source) VALUES ('fine0@example.com', 'fine0@example.com', 'unsubscribed', 'form')`,
    );
    const report = await importOk(lines.join('\n'));
    expect(report).toMatchObject({
      rows: 1500,
      accepted: 499,
      rejected: 1001,
      rejectedByReason: { invalid_email: 1000, unsubscribed: 1 },
      rejectionsTruncated: true,
    });
    expect(report.rejections).toHaveLength(1000);
    expect(report.rejections[0]).toMatchObject({ line: 2, reason: 'unsubscribed' });
    expect(report.rejections[1]).toMatchObject({ line: 3, email: 'bad1', reason: 'invalid_email' });
    // Data row i is on line i + 2; the 999th invalid row listed is bad1498, the 1,000th is left out.
    expect(report.rejections.at(-1)).toMatchObject({ line: 1500, email: 'bad1498' });
  });
});

describe('GET /api/subscribers/export', () => {
  beforeEach(reset);

  it('streams a header and one line per subscriber, filters, and guards names against formulas', async () => {
    const empty = await exportRows();
    expect(empty.text).toBe(`${exportColumns.join(',')}\n`);

    await seedStates();
    const names = ['=HYPERLINK("http://x","y")', '+1 555', '-minus', '@handle', 'Plain, "quoted"', 'Zoë 🎉'];
    const csv = ['email,name', ...names.map((n, i) => `named${i}@example.com,"${n.replace(/"/g, '""')}"`)].join('\n');
    expect(await importOk(csv)).toMatchObject({ accepted: names.length });

    const all = await exportRows();
    expect(all.text.split('\n')[0]).toBe(exportColumns.join(','));
    expect(Object.keys(all.rows[0]!)).toEqual([...exportColumns]);
    const expected = (await t.c.pool.query('SELECT id, email, status FROM subscribers ORDER BY id')).rows;
    expect(all.rows.map((r) => [Number(r.id), r.email, r.status])).toEqual(expected.map((r) => [r.id, r.email, r.status]));
    expect(all.rows.filter((r) => r.email?.startsWith('named')).map((r) => r.name)).toEqual([
      '\'=HYPERLINK("http://x","y")',
      "'+1 555",
      "'-minus",
      "'@handle",
      'Plain, "quoted"',
      'Zoë 🎉',
    ]);
    const named0 = all.rows.find((r) => r.email === 'named0@example.com')!;
    expect(named0).toMatchObject({ status: 'active', consent_source: 'import', consent_ip: '127.0.0.1', unsubscribed_at: '' });
    expect(named0.created_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);

    const active = await exportRows('?status=active');
    expect(active.rows.map((r) => r.email)).toEqual(['active@example.com', ...names.map((_, i) => `named${i}@example.com`)]);
    expect(active.rows.every((r) => r.status === 'active')).toBe(true);
    expect((await exportRows('?status=bounced')).rows.map((r) => r.email)).toEqual(['bounced@example.com']);
    expect((await exportRows('?email=named1')).rows.map((r) => r.email)).toEqual(['named1@example.com']);
    expect((await exportRows('?source=import&status=active')).rows).toHaveLength(names.length);

    const bad = await t.app.inject({ method: 'GET', url: '/api/subscribers/export?status=gone', headers: t.auth });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe('invalid_input');
    expect((await t.app.inject({ method: 'GET', url: '/api/subscribers/export' })).statusCode).toBe(401);
  });

  it('round-trips through the import: readers, names and suppressions come back as they were', async () => {
    await seedStates();
    const names = ['=SUM(A1:A9)', '+cmd', 'Lovelace, Ada', 'She said "hi"', 'Zoë 🎉', ''];
    const csv = ['email,name', ...names.map((n, i) => `"Round${i}@Example.com","${n.replace(/"/g, '""')}"`), 'anna@münchen.de,Anna'].join('\n');
    expect(await importOk(csv)).toMatchObject({ accepted: names.length + 1 });
    const before = await subscribers();

    const exported = await exportRows();
    expect(exported.rows).toHaveLength(before.length);

    // A fresh list (another instance, or after a loss) fed with the export.
    await reset();
    const report = await importOk(exported.text);
    expect(report).toMatchObject({
      rows: before.length,
      accepted: before.filter((s) => s.status === 'active').length,
      rejectedByReason: { pending: 1, unsubscribed: 1, bounced: 1, complained: 1 },
    });
    const after = await subscribers();
    const view = (rows: typeof before) => rows.filter((s) => s.status === 'active').map((s) => [s.email, s.email_normalized, s.name]);
    expect(view(after)).toEqual(view(before));
    expect(after.every((s) => s.status === 'active')).toBe(true);
    expect(after.find((s) => s.email === 'anna@münchen.de')).toMatchObject({ email_normalized: 'anna@xn--mnchen-3ya.de' });
  });
});

describe('formula guard on addresses', () => {
  beforeEach(reset);

  // Valid addresses a spreadsheet would run as formulas, and ones that already start with the
  // guard's own quote (which must not lose it on the way back), as sign-ups store them.
  const addresses = ['=1+1@example.com', '+cmd@example.com', '-minus@example.com', "'=quoted@example.com", "''+twice@example.com", "o'brien@example.com"];
  const seed = () =>
    t.c.pool.query(
      `INSERT INTO subscribers (email, email_normalized, name, status, consent_source) SELECT e, lower(e), '=HYPERLINK("x")', 'active', 'form' FROM unnest($1::text[]) AS e`,
      [addresses],
    );

  it('exports an address starting with = + - behind a quote, and one already starting with a quote and one of them behind another', async () => {
    await seed();
    const { rows } = await exportRows();
    expect(rows.map((r) => r.email)).toEqual([
      "'=1+1@example.com",
      "'+cmd@example.com",
      "'-minus@example.com",
      "''=quoted@example.com",
      "'''+twice@example.com",
      "o'brien@example.com",
    ]);
    expect(new Set(rows.map((r) => r.name))).toEqual(new Set(['\'=HYPERLINK("x")']));
  });

  it('takes the guard off again on import: the addresses come back exactly', async () => {
    await seed();
    const exported = await exportRows();
    await reset();
    expect(await importOk(exported.text)).toMatchObject({ accepted: addresses.length, rejected: 0 });
    expect((await subscribers()).map((s) => [s.email, s.email_normalized, s.name])).toEqual(addresses.map((a) => [a, a.toLowerCase(), '=HYPERLINK("x")']));
  });

  it('imports such addresses from a file written by hand, unguarded, as they are', async () => {
    expect(await importOk(['email', '=1+1@example.com', '-minus@example.com'].join('\n'))).toMatchObject({ accepted: 2 });
    expect((await subscribers()).map((s) => s.email)).toEqual(['=1+1@example.com', '-minus@example.com']);
  });
});

// What these check is memory, not speed (speed is the bench's): the time limits only stop a hang,
// and are wide enough for a loaded two-core machine (the import took 78 s there, 18 s quiet).
describe('100,000 readers', () => {
  const ROWS = 100_000;
  const LINE_BYTES = 320;

  it('imports them from a CSV streamed through the request, with flat memory', async () => {
    await reset();
    const { stream, bytes } = generatedCsv(ROWS, LINE_BYTES);
    const mb = (n: number) => Math.round((n / 1024 / 1024) * 10) / 10;

    collectGarbage();
    const base = process.memoryUsage();
    const peak = { heapUsed: 0, live: 0, rss: 0 };
    const grown = (m: NodeJS.MemoryUsage) => {
      peak.heapUsed = Math.max(peak.heapUsed, m.heapUsed - base.heapUsed);
      peak.rss = Math.max(peak.rss, m.rss - base.rss);
    };
    const sampleLive = () => {
      collectGarbage();
      const m = process.memoryUsage();
      grown(m);
      peak.live = Math.max(peak.live, m.heapUsed + m.arrayBuffers - (base.heapUsed + base.arrayBuffers));
    };
    const raw = setInterval(() => grown(process.memoryUsage()), 20);
    const live = setInterval(sampleLive, 500);
    const began = performance.now();
    let report: Report;
    try {
      report = await importOk(stream);
    } finally {
      clearInterval(raw);
      clearInterval(live);
    }
    const seconds = (performance.now() - began) / 1000;
    console.log(
      `import of ${ROWS} rows (${mb(bytes)} MB) through app.inject: ${seconds.toFixed(1)} s; peak growth: ` +
        `live heap + buffers ${mb(peak.live)} MB, heapUsed ${mb(peak.heapUsed)} MB, rss ${mb(peak.rss)} MB`,
    );

    expect(report).toEqual({ rows: ROWS, accepted: ROWS, rejected: 0, rejectedByReason: {}, rejections: [], rejectionsTruncated: false });
    const { rows } = await t.c.pool.query(
      `SELECT count(*)::int AS n, count(DISTINCT email_normalized)::int AS d FROM subscribers WHERE status = 'active' AND consent_source = 'import'`,
    );
    expect(rows[0]).toEqual({ n: ROWS, d: ROWS });
    // Holding the file takes its size in buffers, holding the rows as objects more than that:
    // what stays alive during the import is a small fraction of it.
    expect(peak.live).toBeLessThan(bytes / 3);
    expect(peak.heapUsed).toBeLessThan(150 * 1024 * 1024);
  }, 240_000);

  it('exports all of them', async () => {
    const began = performance.now();
    const { text, rows } = await exportRows('?status=active');
    console.log(
      `export of ${rows.length} rows (${Math.round(text.length / 1024 / 1024)} MB) through app.inject: ${((performance.now() - began) / 1000).toFixed(1)} s`,
    );
    expect(rows).toHaveLength(ROWS);
    const ids = rows.map((r) => Number(r.id));
    expect(ids.every((id, i) => i === 0 || id > ids[i - 1]!)).toBe(true);
    expect(rows[0]).toMatchObject({ email: 'reader0@bulk.example.com', name: 'Reader 0', status: 'active' });
    expect(rows.at(-1)).toMatchObject({ email: `reader${ROWS - 1}@bulk.example.com`, name: `Reader ${ROWS - 1}` });
  }, 240_000);
});
