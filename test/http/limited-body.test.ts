import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from '@jest/globals';
import { limitedBody } from '../../src/http/limited-body.js';
import { PayloadTooLarge, UploadAborted } from '../../src/errors.js';

async function drain(stream: Readable): Promise<number> {
  let bytes = 0;
  for await (const chunk of stream) bytes += (chunk as Buffer).length;
  return bytes;
}

describe('limitedBody', () => {
  it('passes a body up to its limit through unchanged', async () => {
    const body = Readable.from([Buffer.alloc(600), Buffer.alloc(424)]);
    expect(await drain(limitedBody(body, 1024, 'CSV'))).toBe(1024);
  });

  it('fails with PayloadTooLarge (413 payload_too_large) at the first byte past the limit', async () => {
    const body = Readable.from([Buffer.alloc(1024), Buffer.alloc(1)]);
    const err = await drain(limitedBody(body, 1024, 'CSV')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PayloadTooLarge);
    expect(err).toMatchObject({ status: 413, code: 'payload_too_large' });
    const big = await drain(limitedBody(Readable.from([Buffer.alloc(3 * 1024 * 1024)]), 2 * 1024 * 1024, 'CSV')).catch((e: unknown) => e);
    expect(big).toMatchObject({ message: 'the CSV is larger than 2 MB' });
  });

  it('fails with UploadAborted (400 upload_aborted) when the body closes before its end', async () => {
    const body = new PassThrough();
    const limited = limitedBody(body, 1024, 'CSV');
    const read = drain(limited).catch((e: unknown) => e);
    body.write(Buffer.alloc(10));
    body.destroy();
    const err = await read;
    expect(err).toBeInstanceOf(UploadAborted);
    expect(err).toMatchObject({ status: 400, code: 'upload_aborted', message: 'the upload ended before the whole CSV arrived' });
  });

  it("passes the body's own error on", async () => {
    const body = new PassThrough();
    const limited = limitedBody(body, 1024, 'CSV');
    const read = drain(limited).catch((e: unknown) => e);
    const broken = new Error('socket hang up');
    body.destroy(broken);
    expect(await read).toBe(broken);
  });
});
