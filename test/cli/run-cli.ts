import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { configVariables } from '../../src/config/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ENTRY = ['--import', 'tsx', 'src/bin/broadside.ts'];

export type CliResult = { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string };

export type CliRun = {
  child: ChildProcess;
  /** What it printed so far. */
  readonly stdout: string;
  readonly stderr: string;
  done: Promise<CliResult>;
};

/** Every output of every run of this file, to check afterwards that no secret was ever printed. */
export const transcripts: string[] = [];

/**
 * The environment of a CLI run: the outer environment without any of the service's variables
 * (a developer's own API_TOKEN or PORT must not leak in), then `env`.
 */
export function cliEnv(env: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...process.env };
  for (const name of [...configVariables, 'BROADSIDE_URL']) delete out[name];
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

/** The real CLI (`node --import tsx src/bin/broadside.ts …`) as a child process with pipes (not a terminal). */
export function startCli(args: string[], env: Record<string, string | undefined>): CliRun {
  const child = spawn(process.execPath, [...ENTRY, ...args], { cwd: root, env: cliEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  const done = new Promise<CliResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      transcripts.push(stdout, stderr);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return {
    child,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    done,
  };
}

export const runCli = (args: string[], env: Record<string, string | undefined>): Promise<CliResult> => startCli(args, env).done;

/**
 * The CLI on a pseudo-terminal, through util-linux's `script`, so stdout is a TTY as at an
 * editor's terminal (`cols` wide, 200 unless told). Output is stdout and stderr together, as the
 * terminal shows them.
 */
export function runCliOnTerminal(
  args: string[],
  env: Record<string, string | undefined>,
  opts: { cols?: number } = {},
): Promise<{ code: number | null; output: string }> {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const command = `stty cols ${opts.cols ?? 200} rows 40; exec ${[process.execPath, ...ENTRY, ...args].map(quote).join(' ')}`;
  const child = spawn('script', ['-qefc', command, '/dev/null'], { cwd: root, env: cliEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString('utf8')));
  child.stderr.on('data', (d: Buffer) => (output += d.toString('utf8')));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      transcripts.push(output);
      resolve({ code, output });
    });
  });
}
