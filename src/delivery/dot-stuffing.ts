// nodemailer's SMTPConnection writes every message through its DataStream, which makes line ends
// CRLF and stuffs a dot at the start of a line, byte by byte in JavaScript: for a ~90 KB issue,
// about a quarter of a worker's CPU (measured with --cpu-prof during bench:send). The same rules
// can be applied by looking only at the bytes that matter (CR, LF and the byte after each), found
// by Buffer#indexOf in native code: the output is the same, byte for byte, for any input and any
// cut into chunks (test/delivery/dot-stuffing.test.ts checks it against nodemailer's own).
import DataStream from 'nodemailer/lib/smtp-connection/data-stream';

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const INSERT_LF = Buffer.from('\n');
const INSERT_LF_DOT = Buffer.from('\n.');
const INSERT_CR = Buffer.from('\r');
const INSERT_DOT = Buffer.from('.');

/**
 * Messages built SMTP-ready (see isSmtpReady): each is passed to the connection as it is, since
 * DataStream's rules would leave it unchanged. Weak: a message is forgotten with its bytes.
 */
const smtpReady = new WeakSet<Buffer>();

/**
 * True when `piece` can go into DATA as it is and be followed by any other such piece: no bare
 * CR or LF, no line starting with a dot, and it ends at a line's end (or is empty).
 */
export function isSmtpReady(piece: Buffer): boolean {
  const len = piece.length;
  if (len === 0) return true;
  if (piece[0] === DOT || piece[len - 2] !== CR || piece[len - 1] !== LF) return false;
  for (let lf = piece.indexOf(LF); lf !== -1; lf = piece.indexOf(LF, lf + 1)) {
    if (piece[lf - 1] !== CR || piece[lf + 1] === DOT) return false;
  }
  // Every CR is followed by LF: as many CRs as LFs, since each LF was found after a CR.
  let crs = 0;
  for (let cr = piece.indexOf(CR); cr !== -1; cr = piece.indexOf(CR, cr + 1)) crs++;
  let lfs = 0;
  for (let lf = piece.indexOf(LF); lf !== -1; lf = piece.indexOf(LF, lf + 1)) lfs++;
  return crs === lfs;
}

/**
 * Marks a whole message made only of SMTP-ready pieces (the caller checked each with
 * isSmtpReady): its DataStream passes it on without a scan. Returns the message.
 */
export function markSmtpReady(message: Buffer): Buffer {
  smtpReady.add(message);
  return message;
}

/** Whether `message` was marked SMTP-ready (for the tests). */
export const isMarkedSmtpReady = (message: Buffer): boolean => smtpReady.has(message);

type TransformFn = (this: DataStream, chunk: Buffer | string, encoding: BufferEncoding, done: (err?: Error | null) => void) => void;
type FlushFn = (this: DataStream, done: (err?: Error | null) => void) => void;

/** nodemailer's own transform, as shipped. */
export const nodemailerDotStuffing: TransformFn = (DataStream.prototype as unknown as { _transform: TransformFn })._transform;
/** nodemailer's own end of the data (the terminating dot), as shipped. */
export const nodemailerFlush: FlushFn = (DataStream.prototype as unknown as { _flush: FlushFn })._flush;

/**
 * An SMTP-ready message up to this size is held back until the data ends and written with the
 * terminating ".\r\n" in one piece: one socket write instead of two. Measured with a loopback
 * peer that answers each message (as a relay does), a 6 KB message cost the sender 39–51 µs of
 * CPU in one write against 71–92 µs in two, 16 KB 29–54 against 55–65 µs, but 60 KB 122–151
 * against 74–80 µs (the copy, and a write the kernel cannot take at once). Reader mails are about 9.5 KB; issue
 * copies (~90 KB) are written as they come.
 */
const HOLD_MAX_BYTES = 16 * 1024;
const TERMINATOR_AFTER_LF = Buffer.from('.\r\n');
/** The SMTP-ready message a DataStream holds back (see HOLD_MAX_BYTES). */
const held = new WeakMap<DataStream, Buffer>();

/** Writes out a message held back, if any: before any later chunk, so the order stays. */
function release(stream: DataStream): void {
  const message = held.get(stream);
  if (message) {
    held.delete(stream);
    stream.push(message);
  }
}

/**
 * DataStream's rules: a bare CR becomes CRLF (and a dot after it is stuffed: "\r.\r" must not
 * end the data), a bare LF becomes CRLF, a dot at the start of a line (or of the message) is
 * doubled. Only CR and LF positions, and the first byte of the chunk, are looked at.
 */
export const fastDotStuffing: TransformFn = function (this: DataStream, input, _encoding, done) {
  if (!input?.length) return done();
  const chunk = typeof input === 'string' ? Buffer.from(input) : input;
  const len = chunk.length;
  this.inByteCount += len;
  if (this.lastByte === false && smtpReady.has(chunk)) {
    // A whole message built SMTP-ready, as the stream's first chunk: nothing to insert. A small
    // one waits for the terminating dot (fastFlush), to go out with it in one write.
    this.outByteCount += len;
    this.lastByte = chunk[len - 1]!;
    if (len <= HOLD_MAX_BYTES) held.set(this, chunk);
    else this.push(chunk);
    return done();
  }
  release(this);
  const prevOf = (i: number) => (i ? chunk[i - 1]! : this.lastByte);
  // Insertions, in increasing position, at most one per position.
  const at: number[] = [];
  const what: Buffer[] = [];
  const first = chunk[0]!;
  if (this.lastByte === CR && first !== LF) {
    at.push(0);
    what.push(first === DOT ? INSERT_LF_DOT : INSERT_LF);
  } else if (first === DOT && (this.lastByte === LF || this.lastByte === false)) {
    at.push(0);
    what.push(INSERT_DOT);
  }
  let nextLf = chunk.indexOf(LF);
  let nextCr = chunk.indexOf(CR);
  while (nextLf !== -1 || nextCr !== -1) {
    if (nextCr === -1 || (nextLf !== -1 && nextLf < nextCr)) {
      const i = nextLf;
      if (prevOf(i) !== CR) {
        at.push(i);
        what.push(INSERT_CR);
      }
      if (i + 1 < len && chunk[i + 1] === DOT) {
        at.push(i + 1);
        what.push(INSERT_DOT);
      }
      nextLf = chunk.indexOf(LF, i + 1);
    } else {
      const j = nextCr;
      if (j + 1 < len && chunk[j + 1] !== LF) {
        at.push(j + 1);
        what.push(chunk[j + 1] === DOT ? INSERT_LF_DOT : INSERT_LF);
      }
      nextCr = chunk.indexOf(CR, j + 1);
    }
  }
  if (at.length === 0) {
    this.outByteCount += len;
    this.push(chunk);
  } else {
    const parts: Buffer[] = [];
    let total = 0;
    let from = 0;
    for (let k = 0; k < at.length; k++) {
      const pos = at[k]!;
      if (pos > from) {
        parts.push(chunk.subarray(from, pos));
        total += pos - from;
      }
      parts.push(what[k]!);
      total += what[k]!.length;
      from = pos;
    }
    if (from < len) {
      parts.push(chunk.subarray(from));
      total += len - from;
    }
    this.outByteCount += total;
    this.push(Buffer.concat(parts, total));
  }
  this.lastByte = chunk[len - 1]!;
  done();
};

/**
 * DataStream's end of the data: the terminating dot, joined to the message held back, if any
 * (an SMTP-ready message ends with CRLF, so the terminator is ".\r\n"); nodemailer's own otherwise.
 */
export const fastFlush: FlushFn = function (this: DataStream, done) {
  const message = held.get(this);
  if (!message) return nodemailerFlush.call(this, done);
  held.delete(this);
  this.outByteCount += TERMINATOR_AFTER_LF.length;
  this.push(Buffer.concat([message, TERMINATOR_AFTER_LF], message.length + TERMINATOR_AFTER_LF.length));
  done();
};

/** Makes every SMTPConnection of this process use fastDotStuffing and fastFlush (idempotent). */
export function installFastDotStuffing(): void {
  const proto = DataStream.prototype as unknown as { _transform: TransformFn; _flush: FlushFn };
  proto._transform = fastDotStuffing;
  proto._flush = fastFlush;
}
