// The fast dot-stuffing (src/delivery/dot-stuffing.ts) against nodemailer's own DataStream: the
// same bytes out for any input cut into any chunks, and the same byte counts.
import { describe, expect, it } from '@jest/globals';
import DataStream from 'nodemailer/lib/smtp-connection/data-stream';
import { fastDotStuffing, fastFlush, markSmtpReady, nodemailerDotStuffing, nodemailerFlush } from '../../src/delivery/dot-stuffing.js';

type Transform = typeof fastDotStuffing;
type Flush = typeof fastFlush;

/** The flush that goes with each transform: installFastDotStuffing installs both. */
const flushOf = (transform: Transform): Flush => (transform === fastDotStuffing ? fastFlush : nodemailerFlush);

/** What a DataStream using `transform` (and its flush) writes for `chunks`: the bytes, the pieces, and its byte counts. */
async function runInPieces(transform: Transform, chunks: Buffer[]): Promise<{ pieces: Buffer[]; inBytes: number; outBytes: number }> {
  const s = new DataStream();
  Object.assign(s as unknown as { _transform: Transform; _flush: Flush }, { _transform: transform, _flush: flushOf(transform) });
  const pieces: Buffer[] = [];
  s.on('data', (d: Buffer) => pieces.push(d));
  return new Promise((resolve, reject) => {
    s.on('error', reject);
    s.on('end', () => resolve({ pieces, inBytes: s.inByteCount, outBytes: s.outByteCount }));
    for (const c of chunks) s.write(c);
    s.end();
  });
}

/** What a DataStream using `transform` (and its flush) writes for `chunks`, and its byte counts. */
async function run(transform: Transform, chunks: Buffer[]): Promise<{ out: Buffer; inBytes: number; outBytes: number }> {
  const { pieces, inBytes, outBytes } = await runInPieces(transform, chunks);
  return { out: Buffer.concat(pieces), inBytes, outBytes };
}

/** A deterministic generator (mulberry32), so a failure can be replayed. */
function rng(seed: number) {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALPHABET = Buffer.from('\r\n.a');

describe('fast dot-stuffing', () => {
  it.each([
    ['empty', ['']],
    ['a dot first', ['.x\r\n']],
    ['a dot after CRLF, cut between them', ['a\r', '\n', '.b']],
    ['a bare CR before a dot, cut after the CR', ['a\r', '.b']],
    ['a bare LF, first byte of a chunk', ['a', '\nb']],
    ['CR at the end', ['a\r']],
    ['CRCR LFLF', ['\r\r\n\n..']],
  ])('%s: the same bytes as nodemailer', async (_name, chunks) => {
    const input = chunks.map((c) => Buffer.from(c));
    expect(await run(fastDotStuffing, input)).toEqual(await run(nodemailerDotStuffing, input));
  });

  it('the same bytes as nodemailer for 3,000 random inputs of CR, LF, dots and text, cut at random', async () => {
    const random = rng(16);
    for (let n = 0; n < 3000; n++) {
      const length = Math.floor(random() * 40);
      const bytes = Buffer.alloc(length);
      for (let i = 0; i < length; i++) bytes[i] = ALPHABET[Math.floor(random() * ALPHABET.length)]!;
      const chunks: Buffer[] = [];
      for (let from = 0; from < length; ) {
        const to = Math.min(length, from + 1 + Math.floor(random() * 8));
        chunks.push(bytes.subarray(from, to));
        from = to;
      }
      const [fast, slow] = [await run(fastDotStuffing, chunks), await run(nodemailerDotStuffing, chunks)];
      if (!fast.out.equals(slow.out))
        expect([JSON.stringify(chunks.map((c) => c.toString())), fast.out.toString()]).toEqual([expect.any(String), slow.out.toString()]);
      expect(fast).toEqual(slow);
    }
  });

  it('leaves a CRLF message with no dot at a line start as it is, in one piece', async () => {
    const message = Buffer.from('Subject: x\r\n\r\n'.concat('line of text\r\n'.repeat(5000)));
    const r = await run(fastDotStuffing, [message]);
    expect(r.out.equals(Buffer.concat([message, Buffer.from('.\r\n')]))).toBe(true);
  });

  it('writes a small SMTP-ready message and the terminating dot in one piece, a large one as it comes', async () => {
    const small = markSmtpReady(Buffer.from('Subject: x\r\n\r\n'.concat('line of text\r\n'.repeat(500))));
    const r = await runInPieces(fastDotStuffing, [small]);
    expect(r.pieces.length).toBe(1);
    expect(r.pieces[0]!.equals(Buffer.concat([small, Buffer.from('.\r\n')]))).toBe(true);
    expect([r.inBytes, r.outBytes]).toEqual([small.length, small.length + 3]);
    const large = markSmtpReady(Buffer.from('Subject: x\r\n\r\n'.concat('line of text\r\n'.repeat(10_000))));
    const l = await runInPieces(fastDotStuffing, [large]);
    expect(l.pieces.map((p) => p.length)).toEqual([large.length, 3]);
  });

  it('the same bytes as nodemailer when more follows a message held back', async () => {
    const message = markSmtpReady(Buffer.from('Subject: x\r\n\r\nbody\r\n'));
    for (const after of ['.dot\r\n', 'no line end', '\r', '\n.']) {
      const chunks = [message, Buffer.from(after)];
      expect(await run(fastDotStuffing, chunks)).toEqual(await run(nodemailerDotStuffing, chunks));
    }
  });
});
