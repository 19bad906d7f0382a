// `broadside doctor`: what the service needs (Postgres, migrations, Redis and its eviction policy,
// the SMTP relay's greeting and login, the ports), each with ✓, ! (a warning) or ✗, then the
// banner the service prints at start. Exit 1 when a check failed.
import { print } from './io.js';

const MARKS = { ok: '✓', warn: '!', fail: '✗' } as const;

export async function runDoctor(env: NodeJS.ProcessEnv = process.env): Promise<number> {
  // Loaded here: the editor's HTTP commands never load pg, ioredis or nodemailer.
  const { diagnose } = await import('../startup/diagnose.js');
  const { findings, banner } = await diagnose(env);
  print('What "broadside start" needs, checked with this environment:');
  print();
  for (const f of findings) {
    print(`  ${MARKS[f.mark]} ${f.what}: ${f.found}`);
    for (const hint of f.hints ?? []) print(`      ${hint}`);
  }
  if (banner) {
    print();
    for (const line of banner) print(`  ${line}`);
  }
  const failed = findings.filter((f) => f.mark === 'fail').length;
  const warned = findings.filter((f) => f.mark === 'warn').length;
  print();
  if (failed) print(`${failed} check${failed === 1 ? '' : 's'} failed${warned ? `, ${warned} warning${warned === 1 ? '' : 's'}` : ''}.`);
  else print(`All checks passed${warned ? `, with ${warned} warning${warned === 1 ? '' : 's'}` : ''}.`);
  return failed ? 1 : 0;
}
