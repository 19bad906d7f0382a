import { type Agent, get } from 'node:https';

/**
 * GETs a URL and answers its body as text. Used for what SNS asks us to fetch: the certificate
 * that signs its messages, and the SubscribeURL that confirms a subscription. Injected through
 * the container so tests never reach the network.
 */
export type HttpsGet = (url: string) => Promise<string>;

export type HttpsGetOptions = {
  /** The whole exchange, connection to last byte. */
  timeoutMs?: number;
  /** A certificate is ~2 KB and a confirmation ~1 KB: anything much bigger is not what we asked for. */
  maxBytes?: number;
  /** Node's global agent by default (the system's CAs); tests pass one that trusts their own CA. */
  agent?: Agent;
};

/**
 * https only, no redirects (the caller validated the host; a redirect could lead anywhere else),
 * 200 only, bounded in time and size. Rejects on anything else.
 */
export function createHttpsGet({ timeoutMs = 5000, maxBytes = 64 * 1024, agent }: HttpsGetOptions = {}): HttpsGet {
  return (url) =>
    new Promise<string>((resolve, reject) => {
      let target: URL;
      try {
        target = new URL(url);
      } catch {
        return reject(new Error('not a URL'));
      }
      if (target.protocol !== 'https:') return reject(new Error('only https URLs are fetched'));
      const req = get(target, { agent, signal: AbortSignal.timeout(timeoutMs), headers: { accept: '*/*' } }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          return reject(new Error(`GET ${target.host} answered ${res.statusCode}`));
        }
        const declared = Number(res.headers['content-length']);
        if (Number.isFinite(declared) && declared > maxBytes) {
          res.destroy();
          return reject(new Error(`GET ${target.host}: body over ${maxBytes} bytes`));
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBytes) {
            res.destroy(new Error(`GET ${target.host}: body over ${maxBytes} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', reject);
        // An abort (the timeout) or a reset mid-body closes without 'end'.
        res.on('close', () => {
          if (!res.complete) reject(new Error(`GET ${target.host}: connection closed before the end of the body`));
        });
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      });
      req.on('error', reject);
    });
}
