import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { SMTPServer } from 'smtp-server';

/** What a relay answers to RCPT TO: nothing (accept) or a refusal with its code. */
export type RcptAnswer = { code: number; message: string } | undefined;

export type RelayOptions = {
  /**
   * How long the relay takes to answer 250 once a message's data is in. It counts the copy when
   * the data is in: from then on it has the message, whether or not the 250 reaches the worker.
   */
  answerDelayMs?: number;
  /**
   * How long it takes to answer each command it lets us hook (the greeting, MAIL FROM, RCPT TO,
   * the end of DATA): a relay under load, or a slow network path to it.
   */
  commandDelayMs?: number;
  /** Decides RCPT TO (may wait, e.g. for a test to cancel the send first). Accepts by default. */
  onRcpt?: (address: string) => Promise<RcptAnswer> | RcptAnswer;
};

/**
 * A real SMTP server (smtp-server) on a free loopback port that counts the copies it receives
 * per recipient, and can be slow (see RelayOptions). `stop()` is a relay shutting down: it stops
 * listening and answers the next command on an open connection with 421; `start()` listens
 * again on the same port.
 */
export class Relay {
  readonly received = new Map<string, number>();
  /** RCPT TO commands being decided by onRcpt right now. */
  rcptWaiting = 0;
  private server: SMTPServer | undefined;
  port = 0;
  answerDelayMs: number;
  commandDelayMs: number;
  onRcpt: (address: string) => Promise<RcptAnswer> | RcptAnswer;

  constructor(opts: RelayOptions = {}) {
    this.answerDelayMs = opts.answerDelayMs ?? 0;
    this.commandDelayMs = opts.commandDelayMs ?? 0;
    this.onRcpt = opts.onRcpt ?? (() => undefined);
  }

  get url(): string {
    return `smtp://127.0.0.1:${this.port}`;
  }

  total(): number {
    let n = 0;
    for (const v of this.received.values()) n += v;
    return n;
  }

  /** Addresses that got more than one copy. */
  duplicated(): string[] {
    return [...this.received].filter(([, n]) => n > 1).map(([a]) => a);
  }

  /** Forgets what was received (between two sends to the same readers). */
  reset(): void {
    this.received.clear();
  }

  async start(): Promise<void> {
    const slow = async () => {
      if (this.commandDelayMs > 0) await sleep(this.commandDelayMs);
    };
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      closeTimeout: 500,
      onConnect: (_session, cb) => void slow().then(() => cb()),
      onMailFrom: (_address, _session, cb) => void slow().then(() => cb()),
      onRcptTo: (address, _session, cb) => {
        this.rcptWaiting++;
        void slow()
          .then(() => this.onRcpt(address.address))
          .then(
            (answer) => cb(answer ? Object.assign(new Error(answer.message), { responseCode: answer.code }) : undefined),
            (err: Error) => cb(err),
          )
          .finally(() => this.rcptWaiting--);
      },
      onData: (stream, session, cb) => {
        stream.resume();
        stream.on('end', () => {
          for (const r of session.envelope.rcptTo) this.received.set(r.address, (this.received.get(r.address) ?? 0) + 1);
          const delay = this.answerDelayMs + this.commandDelayMs;
          if (delay > 0) setTimeout(() => cb(), delay);
          else cb();
        });
      },
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', () => undefined);
    this.port = (server.server.address() as AddressInfo).port;
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
