// Clients for the bounce listener, as remote MTAs (honest or not) talk to it: over TCP, from a
// chosen loopback address (127.0.0.2, 127.0.0.3, … all reach 127.0.0.1 on Linux), so per-address
// limits can be tested from one machine.
import net from 'node:net';
import type { Readable } from 'node:stream';
import nodemailer from 'nodemailer';

export type SmtpReply =
  | { ok: true; response: string; rejected: string[]; rejectedErrors: { responseCode?: number; response?: string }[] }
  | { ok: false; responseCode: number | undefined; response: string; command: string | undefined };

/** Delivers `raw` over SMTP as a remote MTA would: null sender unless told, no TLS, no AUTH. */
export async function deliver(
  raw: Buffer | string | Readable,
  to: string | string[],
  opts: { port: number; from?: string; localAddress?: string; timeoutMs?: number },
): Promise<SmtpReply> {
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port: opts.port,
    secure: false,
    ignoreTLS: true,
    localAddress: opts.localAddress,
    connectionTimeout: opts.timeoutMs ?? 30_000,
    greetingTimeout: opts.timeoutMs ?? 30_000,
    socketTimeout: opts.timeoutMs ?? 60_000,
  });
  try {
    const info = await transport.sendMail({ envelope: { from: opts.from ?? '', to }, raw });
    const rejectedErrors = ((info as { rejectedErrors?: { responseCode?: number; response?: string }[] }).rejectedErrors ?? []).map((e) => ({
      responseCode: e.responseCode,
      response: e.response,
    }));
    return { ok: true, response: info.response, rejected: (info.rejected as string[]) ?? [], rejectedErrors };
  } catch (err) {
    const e = err as { responseCode?: number; response?: string; command?: string; message: string };
    return { ok: false, responseCode: e.responseCode, response: e.response ?? e.message, command: e.command };
  } finally {
    transport.close();
  }
}

export type OpenConnection = {
  /** The server's first reply line: `220 …` when it took the connection, `421 …` when not. */
  greeting: string;
  /** Whether the server has closed its side. */
  readonly closed: boolean;
  socket: net.Socket;
  /** Sends a line (CRLF added) and resolves with the server's complete reply (all its lines). */
  command(line: string): Promise<string>;
  /** Writes bytes as they are, with no reply expected (the body of DATA). */
  write(bytes: Buffer | string): Promise<void>;
  /** Resolves with the next complete reply (after the end of DATA, say). */
  reply(): Promise<string>;
  close(): Promise<void>;
};

/**
 * A connection held open by hand, for what nodemailer will not do: sit on a connection, stop in
 * the middle of DATA, or cut the socket.
 */
export async function openConnection(port: number, localAddress?: string): Promise<OpenConnection> {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress });
  socket.setNoDelay(true);
  let buffered = '';
  let closed = false;
  const waiting: ((line: string) => void)[] = [];
  const ready: string[] = [];
  const failed: ((err: Error) => void)[] = [];
  socket.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('latin1');
    // A reply is complete at a line whose code is followed by a space (RFC 5321 4.2.1).
    for (;;) {
      const m = /^(?:\d{3}-[^\n]*\n)*\d{3}(?: [^\n]*)?\n/.exec(buffered);
      if (!m) break;
      buffered = buffered.slice(m[0].length);
      const reply = m[0].trimEnd();
      const next = waiting.shift();
      if (next) next(reply);
      else ready.push(reply);
    }
  });
  socket.on('close', () => {
    closed = true;
    for (const f of failed.splice(0)) f(new Error('connection closed'));
  });
  socket.on('error', (err) => {
    for (const f of failed.splice(0)) f(err);
  });
  const reply = () => {
    const r = ready.shift();
    if (r !== undefined) return Promise.resolve(r);
    if (closed) return Promise.reject(new Error('connection closed'));
    return new Promise<string>((resolve, reject) => {
      waiting.push(resolve);
      failed.push(reject);
    });
  };
  const write = (bytes: Buffer | string) => new Promise<void>((resolve, reject) => socket.write(bytes, (err) => (err ? reject(err) : resolve())));
  const greeting = await reply();
  return {
    greeting,
    get closed() {
      return closed;
    },
    socket,
    async command(line: string) {
      await write(`${line}\r\n`);
      return reply();
    },
    write,
    reply,
    async close() {
      if (closed) return;
      await new Promise<void>((resolve) => {
        socket.once('close', () => resolve());
        socket.destroy();
      });
    },
  };
}
