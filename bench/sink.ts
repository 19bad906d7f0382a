// A discarding SMTP server for `npm run bench:send` when Postfix's smtp-sink is not installed,
// and the throttling relay of `npm run bench:throttle`: the tests' relay (test/support/relay.ts,
// smtp-server) in a process of its own, so its CPU is counted apart from the benchmark's. It
// accepts every message, reads it to the end, throws it away and answers 250 at once.
//
//   tsx bench/sink.ts [--port 0] [--host 127.0.0.1] [--throttle-every N]
//
// `--throttle-every N` answers every Nth MAIL FROM (counted over all connections) with
// `421 Try again later, closing connection` and closes that connection, as a provider pacing
// its senders does (5: 20 % of transactions).
//
// Prints `listening <port>` once ready, then a counter line like smtp-sink's `-c` output
// (`sess=<connections> mesg=<messages> thr=<throttled>`) whenever it changed, at most every
// 250 ms and once more on SIGTERM/SIGINT, so the benchmark can check what arrived.
import { parseArgs } from 'node:util';
import { Relay } from '../test/support/relay.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'throttle-every': { type: 'string', default: '0' },
  },
});
const throttleEvery = Number(values['throttle-every']);
if (!Number.isInteger(throttleEvery) || throttleEvery < 0 || throttleEvery === 1) {
  process.stderr.write(`--throttle-every must be 0 (never) or a whole number ≥ 2, got "${values['throttle-every']}"\n`);
  process.exit(2);
}

// No name lookup for the client: a throttling relay closes a connection per 421, and the lookup
// would be timed with the reconnects.
const relay = new Relay({ throttleEvery, reverseLookup: false });
relay.port = Number(values.port);
await relay.start();
process.stdout.write(`listening ${relay.port}\n`);

// One recipient per message here: the copies are the messages.
const counters = () => `sess=${relay.connections} mesg=${relay.total()} thr=${relay.refused}`;
let printed = '';
const report = () => {
  const line = counters();
  if (line !== printed) process.stdout.write(`${line}\n`);
  printed = line;
};
const timer = setInterval(report, 250);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    clearInterval(timer);
    report();
    void relay.stop().then(() => process.exit(0));
    // Pooled clients keep their connections open: do not wait for them.
    setTimeout(() => process.exit(0), 500).unref();
  });
}
