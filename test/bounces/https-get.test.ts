import { Agent, createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHttpsGet } from '../../src/bounces/providers/https-get.js';
import { selfSignedCertificate } from '../support/certificates.js';

// A local HTTPS server with a throw-away certificate for 127.0.0.1; the fetcher's agent trusts it.
let server: Server;
let base: string;
let agent: Agent;

beforeAll(async () => {
  const { certPem: cert, keyPem: key } = selfSignedCertificate('127.0.0.1', '127.0.0.1');
  server = createServer({ cert, key }, (req, res) => {
    if (req.url === '/cert.pem') return res.end('-----BEGIN CERTIFICATE-----\n');
    if (req.url === '/big') {
      // No Content-Length: the limit has to be enforced while reading.
      res.write(Buffer.alloc(40 * 1024, 'a'));
      return res.end(Buffer.alloc(40 * 1024, 'a'));
    }
    if (req.url === '/redirect') return res.writeHead(302, { location: '/cert.pem' }).end();
    if (req.url === '/slow') return res.write('partial'); // never ends
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  agent = new Agent({ ca: cert, keepAlive: false });
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  agent.destroy();
});

describe('createHttpsGet', () => {
  it('answers the body of a 200', async () => {
    expect(await createHttpsGet({ agent })(`${base}/cert.pem`)).toBe('-----BEGIN CERTIFICATE-----\n');
  });

  it('refuses http, redirects, other statuses, bodies over the limit and slow answers', async () => {
    const get = createHttpsGet({ agent, timeoutMs: 300, maxBytes: 64 * 1024 });
    await expect(get(`${base.replace('https:', 'http:')}/cert.pem`)).rejects.toThrow('only https');
    await expect(get(`${base}/redirect`)).rejects.toThrow('answered 302');
    await expect(get(`${base}/missing`)).rejects.toThrow('answered 404');
    await expect(get(`${base}/big`)).rejects.toThrow('over 65536 bytes');
    await expect(get(`${base}/slow`)).rejects.toThrow(/abort|closed before the end/i);
  });

  it('does not trust a certificate outside its CAs', async () => {
    await expect(createHttpsGet()(`${base}/cert.pem`)).rejects.toThrow(/self.signed|certificate/i);
  });
});
