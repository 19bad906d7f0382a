import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { SMTPServer } from 'smtp-server';

/** What a relay answers to RCPT TO: nothing (accept) or a refusal with its code. */
export type RcptAnswer = { code: number; message: string } | undefined;

export type RelayOptions = {
  /**
   * How long the relay takes to answer 250 once a message's data is in. It counts the copy when
   * the data is in: from then on it has the message, whether or not the 250 reaches the worker.
   * A worker killed in that window leaves a copy out there and its message `sending`: the one
   * duplicate the guarantee allows. The delay also keeps a steady number of messages in flight.
   */
  answerDelayMs?: number;
  /**
   * How long it takes to answer each command it lets us hook (the greeting, MAIL FROM, RCPT TO,
   * the end of DATA): a relay under load, or a slow network path to it.
   */
  commandDelayMs?: number;
  /** Decides RCPT TO (may wait, e.g. for a test to cancel the send first). Accepts by default. */
  onRcpt?: (address: string) => Promise<RcptAnswer> | RcptAnswer;
  /** Answers 421 to every Nth MAIL FROM (counted over all connections), then closes; 0: never. */
  throttleEvery?: number;
  /** On stop, connections still open after this long are closed (after their current reply). */
  closeTimeoutMs?: number;
  /**
   * Whether to look up the client's name before the greeting, as smtp-server does by default.
   * The benchmark's sink turns it off: a throttling relay closes a connection per 421, and the
   * lookups would be timed with the reconnects.
   */
  reverseLookup?: boolean;
};

/**
 * A real SMTP server (smtp-server) on a free loopback port that counts the copies it receives
 * per recipient, and can be slow, throttle, refuse, drop connections and go away (see
 * RelayOptions and the fields below, which a test may change at any time). `stop()` is a relay
 * shutting down: it stops listening (new connections are refused) and answers the next command
 * on an open connection with 421 (a message whose data is in is still answered); `start()`
 * listens again on the same port.
 */
export class Relay {
  /** Copies whose data the relay received, per recipient (a dropped one counts: it has it). */
  readonly received = new Map<string, number>();
  /** Connections opened, MAIL FROM commands seen, and the refusals (421 at MAIL FROM, any at RCPT TO). */
  connections = 0;
  transactions = 0;
  refused = 0;
  /** RCPT TO commands being decided by onRcpt right now. */
  rcptWaiting = 0;
  answerDelayMs: number;
  commandDelayMs: number;
  onRcpt: (address: string) => Promise<RcptAnswer> | RcptAnswer;
  throttleEvery: number;
  /** Answer 421 to every MAIL FROM. */
  refuseAll = false;
  /** Drop the connection without a word once the data of this copy (the `copy`th to `address`) is in. */
  dropAfterData: (address: string, copy: number) => boolean = () => false;
  port = 0;
  private server: SMTPServer | undefined;
  private readonly closeTimeoutMs: number;
  private readonly reverseLookup: boolean;

  constructor(opts: RelayOptions = {}) {
    this.answerDelayMs = opts.answerDelayMs ?? 0;
    this.commandDelayMs = opts.commandDelayMs ?? 0;
    this.onRcpt = opts.onRcpt ?? (() => undefined);
    this.throttleEvery = opts.throttleEvery ?? 0;
    this.closeTimeoutMs = opts.closeTimeoutMs ?? 500;
    this.reverseLookup = opts.reverseLookup ?? true;
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

  async start(): Promise<this> {
    const slow = async () => {
      if (this.commandDelayMs > 0) await sleep(this.commandDelayMs);
    };
    const refusal = (r: { code: number; message: string }) => Object.assign(new Error(r.message), { responseCode: r.code });
    const server: SMTPServer = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      closeTimeout: this.closeTimeoutMs,
      disableReverseLookup: !this.reverseLookup,
      onConnect: (_session, cb) => {
        this.connections++;
        void slow().then(() => cb());
      },
      onMailFrom: (_address, _session, cb) =>
        void slow().then(() => {
          this.transactions++;
          if (this.refuseAll || (this.throttleEvery > 0 && this.transactions % this.throttleEvery === 0)) {
            this.refused++;
            // smtp-server closes the connection after any 421, as RFC 5321 asks.
            return cb(refusal({ code: 421, message: 'Try again later, closing connection' }));
          }
          cb();
        }),
      onRcptTo: (address, _session, cb) => {
        this.rcptWaiting++;
        void slow()
          .then(() => this.onRcpt(address.address))
          .then(
            (answer) => {
              if (answer) this.refused++;
              cb(answer ? refusal(answer) : undefined);
            },
            (err: Error) => cb(err),
          )
          .finally(() => this.rcptWaiting--);
      },
      onData: (stream, session, cb) => {
        stream.resume();
        stream.on('end', () => {
          let drop = false;
          for (const r of session.envelope.rcptTo) {
            const copy = (this.received.get(r.address) ?? 0) + 1;
            this.received.set(r.address, copy);
            drop ||= this.dropAfterData(r.address, copy);
          }
          if (drop) {
            // smtp-server does not hand its socket to the handlers: find this session's one.
            const connections = (server as unknown as { connections: Set<{ id: string; _socket: Socket }> }).connections;
            return [...connections].find((c) => c.id === session.id)?._socket.destroy();
          }
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
    return this;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
