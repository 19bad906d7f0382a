// A discarding SMTP server for `npm run bench:send` when Postfix's smtp-sink is not installed,
// and the throttling relay of `npm run bench:throttle`: accepts every message, reads it to the
// end, throws it away and answers 250 at once.
//
//   tsx bench/sink.ts [--port 0] [--host 127.0.0.1] [--throttle-every N]
//
// `--throttle-every N` answers every Nth MAIL FROM (counted over all connections) with
// `421 4.7.0 Try again later, closing connection` and closes that connection, as a provider
// pacing its senders does (5: 20 % of transactions).
//
// Prints `listening <port>` once ready, then a counter line like smtp-sink's `-c` output
// (`sess=<sessions> quit=<quits> mesg=<messages> thr=<throttled>`) whenever it changed, at most
// every 250 ms and once more on SIGTERM/SIGINT, so the benchmark can check what arrived.
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { SMTPServer } from 'smtp-server';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    'throttle-every': { type: 'string', default: '0' },
  },
});
const throttleEvery = Number(values['throttle-every']);
if (!Number.isInteger(throttleEvery) || throttleEvery < 0 || throttleEvery === 1) {
  process.stderr.write(`--throttle-every must be 0 (never) or a whole number ≥ 2, got "${values['throttle-every']}"\n`);
  process.exit(2);
}

let sessions = 0;
let quits = 0;
let messages = 0;
let transactions = 0;
let throttled = 0;

const server = new SMTPServer({
  logger: false,
  authOptional: true,
  disabledCommands: ['AUTH', 'STARTTLS'],
  // Large enough for any issue; announced in EHLO, never enforced against us.
  size: 64 * 1024 * 1024,
  banner: 'bench sink',
  // No name for the client (smtp-server looks one up per connection, up to 1.5 s): a
  // throttling relay closes a connection per 421, and the lookup would time the reconnects.
  disableReverseLookup: true,
  onConnect(_session, cb) {
    sessions++;
    cb();
  },
  onClose() {
    quits++;
  },
  onMailFrom(_address, _session, cb) {
    transactions++;
    if (throttleEvery > 0 && transactions % throttleEvery === 0) {
      throttled++;
      // smtp-server closes the connection after any 421, as RFC 5321 asks.
      return cb(Object.assign(new Error('Try again later, closing connection'), { responseCode: 421 }));
    }
    cb();
  },
  onData(stream, _session, cb) {
    // Drain without keeping anything; answer as soon as the final dot has been read.
    stream.on('data', () => {});
    stream.on('end', () => {
      messages++;
      cb();
    });
  },
});
server.on('error', (err) => process.stderr.write(`sink error: ${err.message}\n`));

const counters = () => `sess=${sessions} quit=${quits} mesg=${messages} thr=${throttled}`;
let printed = '';
const report = () => {
  const line = counters();
  if (line !== printed) process.stdout.write(`${line}\n`);
  printed = line;
};

server.listen(Number(values.port), values.host, () => {
  const { port } = server.server.address() as AddressInfo;
  process.stdout.write(`listening ${port}\n`);
});
const timer = setInterval(report, 250);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    clearInterval(timer);
    report();
    server.close(() => process.exit(0));
    // Pooled clients keep their connections open: do not wait for them.
    setTimeout(() => process.exit(0), 500).unref();
  });
}
