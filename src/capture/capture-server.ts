import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { SMTPServer } from 'smtp-server';
import type { Logger } from '../log.js';

const MAX_MESSAGE_BYTES = 25 * 1024 * 1024;

export type CaptureServer = { port: number; close(): Promise<void> };

/**
 * The development SMTP relay used when SMTP_URL is unset: accepts every message on loopback and
 * stores it as an .eml file under DATA_DIR/mail, where the operator page (/admin/mail) lists it.
 */
export async function startCaptureServer(opts: { dir: string; port: number; host?: string; log: Logger }): Promise<CaptureServer> {
  await mkdir(opts.dir, { recursive: true });
  const server = new SMTPServer({
    name: 'broadside-capture',
    banner: 'Broadside capture server: mail is stored locally, never delivered',
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    size: MAX_MESSAGE_BYTES,
    logger: false,
    onData(stream, session, callback) {
      const id = `${Date.now().toString().padStart(14, '0')}-${randomBytes(4).toString('hex')}`;
      const tmp = path.join(opts.dir, `.${id}.tmp`);
      const final = path.join(opts.dir, `${id}.eml`);
      // Written to a temporary name and renamed, so the page never lists a half-written file.
      pipeline(stream, createWriteStream(tmp))
        .then(async () => {
          if ((stream as unknown as { sizeExceeded?: boolean }).sizeExceeded) {
            await rm(tmp, { force: true });
            const err = Object.assign(new Error('message too large'), { responseCode: 552 });
            return callback(err);
          }
          await rename(tmp, final);
          opts.log.debug({ captureId: id, recipients: session.envelope.rcptTo.length }, 'captured message');
          callback(null, `stored as ${id}`);
        })
        .catch((err: Error) => {
          opts.log.error({ err }, 'capture server could not store a message');
          callback(Object.assign(new Error('could not store message'), { responseCode: 451 }));
        });
    },
  });
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => opts.log.error({ err }, 'capture server error'));
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
