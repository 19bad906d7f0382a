import { Transform, type Readable } from 'node:stream';
import { PayloadTooLarge, UploadAborted } from '../errors.js';

/**
 * A streamed request body as a stream that fails with PayloadTooLarge once more than `maxBytes`
 * have arrived, and with UploadAborted when the client goes away before the end. `what` names
 * the body in those messages ("CSV": "the CSV is larger than 200 MB").
 */
export function limitedBody(body: Readable, maxBytes: number, what: string): Readable {
  let seen = 0;
  // pipe, not pipeline: destroying the request would close the socket before the error
  // response is written. An unread rest of the body is discarded by Node after the reply.
  const limited = body.pipe(
    new Transform({
      transform(chunk: Buffer, _enc, cb) {
        seen += chunk.length;
        if (seen > maxBytes) return cb(new PayloadTooLarge(`the ${what} is larger than ${maxBytes / 1024 / 1024} MB`));
        cb(null, chunk);
      },
    }),
  );
  body.on('error', (err) => limited.destroy(err));
  body.on('close', () => {
    if (!body.readableEnded) limited.destroy(new UploadAborted(`the upload ended before the whole ${what} arrived`));
  });
  return limited;
}
