// A real proxy chain (issue 12, item 6): clients on their own loopback addresses talk to a proxy
// that, like nginx with `proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for`, appends
// the address it was connected from to whatever X-Forwarded-For the client sent, and passes the
// request on from an address of its own to the app listening on a real port. A client writes
// anything it likes at the left of the header; only the right end is the proxy's word.
// (127.0.0.x addresses other than .1 need Linux, which routes all of 127.0.0.0/8 to loopback.)
import { once } from 'node:events';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { useTestContext, type TestContext } from '../support/context.js';
import { openRequest, type HttpAnswer } from '../support/http-client.js';

const LIMIT = 10;
const PROXY = '127.0.0.3';

function send(opts: { port: number; from: string; path: string; method?: string; headers?: IncomingHttpHeaders; body?: string }): Promise<HttpAnswer> {
  const { req, answer } = openRequest(opts);
  req.end(opts.body);
  return answer;
}

/** An appending reverse proxy on 127.0.0.1, connecting to the app from PROXY. */
async function appendingProxy(appPort: number): Promise<Server> {
  const proxy = createServer((req, res) => {
    const given = req.headers['x-forwarded-for'];
    const peer = req.socket.remoteAddress!;
    const headers = { ...req.headers, 'x-forwarded-for': given ? `${given}, ${peer}` : peer };
    const upstream = request({ host: '127.0.0.1', port: appPort, path: req.url, method: req.method, headers, localAddress: PROXY, agent: false }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  return proxy;
}

/** A sign-up as a browser behind the proxy would send it, with a forged X-Forwarded-For. */
const signup = (port: number, from: string, email: string, forged?: string) =>
  send({
    port,
    from,
    path: '/subscribe',
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(forged ? { 'x-forwarded-for': forged } : {}) },
    body: JSON.stringify({ email }),
  });

const consentIps = async (t: TestContext, like: string) =>
  (await t.c.pool.query<{ ip: string }>(`SELECT DISTINCT host(consent_ip) AS ip FROM subscribers WHERE email_normalized LIKE $1 ORDER BY 1`, [like])).rows.map(
    (r) => r.ip,
  );

/** The same story for each way of naming the proxy. */
function behindTheProxy(trustProxy: string, tag: string) {
  const t = useTestContext({ env: { TRUST_PROXY: trustProxy, SIGNUP_RATE_LIMIT: String(LIMIT), SIGNUP_RATE_WINDOW_SECONDS: '600' } });
  let proxy: Server;
  let proxyPort: number;
  let appPort: number;
  beforeAll(async () => {
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    appPort = (t.app.server.address() as AddressInfo).port;
    proxy = await appendingProxy(appPort);
    proxyPort = (proxy.address() as AddressInfo).port;
  });
  afterAll(async () => {
    proxy?.closeAllConnections();
    await new Promise((resolve) => proxy?.close(resolve));
  });

  it('forged left-hand X-Forwarded-For values do not multiply the sign-up limit', async () => {
    const answers: number[] = [];
    for (let i = 1; i <= LIMIT + 3; i++) {
      const res = await signup(proxyPort, '127.0.0.2', `${tag}-forger-${i}@example.com`, `10.9.0.${i}, 203.0.113.7`);
      answers.push(res.status);
    }
    expect(answers).toEqual([...Array(LIMIT).fill(202), 429, 429, 429]);
  });

  it('stores the real client address as consent evidence, never the forged one', async () => {
    expect(await consentIps(t, `${tag}-forger-%`)).toEqual(['127.0.0.2']);
  });

  it('keys the limit on each client, not on the proxy every request comes through', async () => {
    const res = await signup(proxyPort, '127.0.0.4', `${tag}-neighbour@example.com`, '127.0.0.2');
    expect(res.status).toBe(202);
    expect(await consentIps(t, `${tag}-neighbour@%`)).toEqual(['127.0.0.4']);
  });

  return { t, appPort: () => appPort };
}

describe('TRUST_PROXY=1 (one proxy in front)', () => {
  behindTheProxy('1', 'hops');
});

describe("TRUST_PROXY=<the proxy's address>", () => {
  const { t, appPort } = behindTheProxy(`${PROXY}, 10.0.0.0/8`, 'list');

  it('ignores X-Forwarded-For from a client that reaches the app directly', async () => {
    const res = await signup(appPort(), '127.0.0.5', 'list-direct@example.com', '203.0.113.9');
    expect(res.status).toBe(202);
    expect(await consentIps(t, 'list-direct@%')).toEqual(['127.0.0.5']);
  });
});
