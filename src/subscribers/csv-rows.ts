import { pipeline, Transform, type Readable } from 'node:stream';
import { Parser, type Info } from 'csv-parse';

/** One record of a CSV with a header row, and the line (1-based, physical) on which it starts. */
export type CsvRow = { line: number; record: Record<string, string | undefined> };

/** The bytes are not CSV this reader can read (an unclosed quote, a record over 64 KB, …). */
export class UnreadableCsv extends Error {
  override readonly name = 'UnreadableCsv';
}

/**
 * Called once, before the first row: with the header's names (trimmed, lower-cased), or with
 * none when the input ends without a header row. What it throws ends the reading.
 */
export type HeaderCheck = (columns: string[] | undefined) => void;

/**
 * The rows of a CSV stream, in order, each with the line it starts on as an editor's text
 * editor shows it: blank lines count, a quoted field may span lines, and CRLF, LF and lone CR
 * endings are each one line break. Rows are parsed only as fast as the caller takes them. A fault
 * in the bytes is an UnreadableCsv, thrown after every row before it; an error of `input` itself
 * (a size limit, a cut upload) is thrown as it is, as soon as it happens.
 */
export async function* csvRows(input: Readable, checkHeader: HeaderCheck): AsyncGenerator<CsvRow> {
  // Where the header ended: lines are counted from there, because the parser reads ahead of the
  // caller (its own `info.lines` is already past the record being handled).
  let header: { columns: string[]; lines: number; emptyLines: number } | undefined;
  const parser: Parser = new InOrderParser({
    columns: (names: string[]) => {
      const columns = names.map((h) => h.trim().toLowerCase());
      header = { columns, lines: parser.info.lines, emptyLines: parser.info.empty_lines };
      return columns;
    },
    bom: true,
    info: true,
    skip_empty_lines: true,
    trim: true,
    // `Dwayne "The Rock" Johnson` unquoted is what spreadsheets write and read back as is.
    relax_quotes: true,
    relax_column_count: true,
    max_record_size: 64 * 1024,
  });
  // The parser's iterator ends (or is left by the caller) → the parser is destroyed → pipeline
  // destroys `input` too; an error in `input` reaches the parser and is thrown below.
  pipeline(input, lineEndingsToLf(), parser, () => {});

  let checked = false;
  let lastLine = 0;
  let lastEmptyLines = 0;
  for await (const parsed of parser as AsyncIterable<Parsed>) {
    if ('error' in parsed) throw new UnreadableCsv(parsed.error.message);
    if (!checked) {
      checked = true;
      checkHeader(header!.columns);
      lastLine = header!.lines;
      lastEmptyLines = header!.emptyLines;
    }
    const { record, info } = parsed;
    // A record starts after the previous one and the blank lines skipped since; `info.lines` is
    // the line it ends on.
    const line = lastLine + 1 + (info.empty_lines - lastEmptyLines);
    lastLine = info.lines;
    lastEmptyLines = info.empty_lines;
    yield { line, record };
  }
  if (!checked) checkHeader(header?.columns);
}

type Parsed = { record: Record<string, string | undefined>; info: Info } | { error: Error };

/**
 * csv-parse fails by destroying its stream, which throws away the records it parsed ahead of the
 * fault. This one hands the fault over in order, after those records, so every row before a
 * malformed one reaches the caller.
 */
class InOrderParser extends Parser {
  override _transform(chunk: Buffer, encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    super._transform(chunk, encoding, (err?: Error | null) => this.handOver(err, callback));
  }

  override _flush(callback: (err?: Error | null) => void): void {
    super._flush((err?: Error | null) => this.handOver(err, callback));
  }

  private handOver(err: Error | null | undefined, callback: (err?: Error | null) => void): void {
    if (!err) {
      callback(err);
      return;
    }
    this.push({ error: err });
    this.push(null);
    callback();
  }
}

const CR = 0x0d;

/**
 * Turns CRLF and lone CR line endings into LF. csv-parse counts a CRLF inside a quoted field as
 * two lines, which would shift every later line number; with LF only, its count is exact.
 * Read as latin1, byte for byte: CR and LF never occur inside a multi-byte UTF-8 sequence. A CR
 * at the end of a chunk waits for the next one, which may start with its LF.
 */
function lineEndingsToLf(): Transform {
  let heldCr = false;
  return new Transform({
    transform(chunk: Buffer, _encoding, cb) {
      if (!heldCr && chunk.indexOf(CR) === -1) return cb(null, chunk);
      let text = (heldCr ? '\r' : '') + chunk.toString('latin1');
      heldCr = text.endsWith('\r');
      if (heldCr) text = text.slice(0, -1);
      cb(null, Buffer.from(text.replace(/\r\n?/g, '\n'), 'latin1'));
    },
    flush(cb) {
      cb(null, heldCr ? Buffer.from('\n') : undefined);
    },
  });
}
