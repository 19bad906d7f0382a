import { Readable } from 'node:stream';
import { describe, expect, it } from '@jest/globals';
import { csvRows, UnreadableCsv, type CsvRow, type HeaderCheck } from '../../src/subscribers/csv-rows.js';

/** The input as a stream of chunks of `size` bytes (1: every CRLF split across two chunks). */
function chunked(text: string | Buffer, size = 64 * 1024): Readable {
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text);
  return Readable.from(
    (function* () {
      for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
    })(),
  );
}

async function read(input: Readable, checkHeader: HeaderCheck = () => {}): Promise<CsvRow[]> {
  const rows: CsvRow[] = [];
  for await (const row of csvRows(input, checkHeader)) rows.push(row);
  return rows;
}

const lines = [
  'Email , NAME', //               1
  'ada@example.com,Ada', //         2
  '', //                            3 (blank)
  '"multi@example.com","Line one', // 4
  'Line two"', //                   5
  '', //                            6 (blank)
  '', //                            7 (blank)
  'after@example.com,"x"', //       8
  '"two', //                        9
  'lines",y', //                    10
  'last@example.com', //            11
];

describe('csvRows', () => {
  it('gives each record the line it starts on, whatever the line endings and however the bytes are cut', async () => {
    for (const eol of ['\n', '\r\n', '\r']) {
      for (const size of [1, 2, 3, 7, 64 * 1024]) {
        const rows = await read(chunked(lines.join(eol) + eol, size));
        expect([eol, size, rows.map((r) => [r.line, r.record.email])]).toEqual([
          eol,
          size,
          [
            [2, 'ada@example.com'],
            [4, 'multi@example.com'],
            [8, 'after@example.com'],
            [9, `two\nlines`],
            [11, 'last@example.com'],
          ],
        ]);
        // A line break inside a quoted field is read as LF, whatever the file used.
        expect(rows[1]!.record.name).toBe('Line one\nLine two');
      }
    }
  });

  it('names columns by the header, trimmed and lower-cased, after a BOM', async () => {
    const seen: (string[] | undefined)[] = [];
    const rows = await read(chunked(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(' Email ,Name,Notes\r\n a@example.com , A \r\n')])), (c) =>
      seen.push(c),
    );
    expect(seen).toEqual([['email', 'name', 'notes']]);
    expect(rows).toEqual([{ line: 2, record: { email: 'a@example.com', name: 'A', notes: undefined } }]);
  });

  it('asks about the header once: with its names before the first row, with none for an empty input', async () => {
    const calls: (string[] | undefined)[] = [];
    expect(await read(chunked('email\n'), (c) => calls.push(c))).toEqual([]);
    expect(await read(chunked(''), (c) => calls.push(c))).toEqual([]);
    expect(await read(chunked('\n\r\n\n'), (c) => calls.push(c))).toEqual([]);
    expect(calls).toEqual([['email'], undefined, undefined]);
  });

  it('stops with what the header check throws, before any row', async () => {
    const refused = new Error('no email column');
    const rows: CsvRow[] = [];
    await expect(
      (async () => {
        for await (const row of csvRows(chunked('name\nAda\nGrace\n'), () => {
          throw refused;
        }))
          rows.push(row);
      })(),
    ).rejects.toBe(refused);
    expect(rows).toEqual([]);
  });

  it('yields every row before a malformed one, then fails with UnreadableCsv', async () => {
    const rows: CsvRow[] = [];
    const failure = await (async () => {
      for await (const row of csvRows(chunked('email\na@example.com\nb@example.com\n"unclosed@example.com\nc@example.com\n', 5), () => {})) rows.push(row);
    })().catch((err: unknown) => err);
    expect(rows.map((r) => r.record.email)).toEqual(['a@example.com', 'b@example.com']);
    expect(failure).toBeInstanceOf(UnreadableCsv);
    expect((failure as Error).message).toMatch(/quote/i);

    await expect(read(chunked(`email\n"${'x'.repeat(70 * 1024)}"\n`))).rejects.toBeInstanceOf(UnreadableCsv);
  });

  it("fails with the input's own error, the same object", async () => {
    const cut = new Error('the upload stopped');
    const input = Readable.from(
      (async function* () {
        yield Buffer.from('email\na@example.com\n');
        throw cut;
      })(),
    );
    await expect(read(input)).rejects.toBe(cut);
  });

  it('stops reading the input when the caller stops', async () => {
    let produced = 0;
    const input = Readable.from(
      (function* () {
        yield Buffer.from('email\n');
        for (let i = 0; i < 1_000_000; i++) {
          produced++;
          yield Buffer.from(`r${i}@example.com\n`);
        }
      })(),
    );
    for await (const row of csvRows(input, () => {})) if (row.line === 10) break;
    await new Promise<void>((resolve) => {
      if (input.destroyed) resolve();
      else input.once('close', () => resolve());
    });
    expect(input.destroyed).toBe(true);
    expect(produced).toBeLessThan(100_000);
  });
});
