import { request, type ClientRequest, type OutgoingHttpHeaders } from 'node:http';

// A raw HTTP client for tests of the app listening on a real port: a connection of its own per
// request (no keep-alive agent), from a chosen loopback address, with the body written as the
// test likes (all at once, paced, or never finished).

export type HttpAnswer = { status: number; body: string };

/**
 * Opens a request and returns it unended, with its answer, read to the end. `from` binds the
 * client to a loopback address of its own (Linux routes all of 127.0.0.0/8 to loopback). A test
 * that never ends the request gets no unhandled rejection from `answer`.
 */
export function openRequest(opts: { port: number; path: string; method?: string; headers?: OutgoingHttpHeaders; from?: string }): {
  req: ClientRequest;
  answer: Promise<HttpAnswer>;
} {
  const req = request({
    host: '127.0.0.1',
    port: opts.port,
    path: opts.path,
    method: opts.method ?? 'GET',
    headers: opts.headers,
    localAddress: opts.from,
    agent: false,
  });
  const answer = new Promise<HttpAnswer>((resolve, reject) => {
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
  answer.catch(() => undefined);
  return { req, answer };
}
