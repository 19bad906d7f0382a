import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { COMMANDS, HELP_OPTION, HTTP_HELP, HTTP_OPTIONS, type Command, type Options, type Values } from './commands.js';
import { ApiError, CliFailure, ServiceUnreachable, UsageError } from './errors.js';
import { note, print } from './io.js';

const byName = new Map(COMMANDS.map((c) => [c.name, c]));

/** A command in the list: its name and operands (its options are in its own --help), then its summary. */
function line(c: Command): string {
  const words = c.synopsis.split(' ');
  const firstOption = words.findIndex((w) => w.startsWith('-') || w.startsWith('['));
  const operands = (firstOption < 0 ? words : words.slice(0, firstOption)).filter(Boolean);
  return `  ${[c.name, ...operands].join(' ').padEnd(22)}${c.summary}`;
}

function mainUsage(): string {
  const editor = COMMANDS.filter((c) => c.http);
  const operator = COMMANDS.filter((c) => !c.http);
  return [
    'Usage: broadside <command> [options]',
    '',
    'Editor commands, which talk to a running service over its HTTP API:',
    ...editor.map(line),
    '',
    'Operator commands, which run the service itself (configured by environment variables):',
    ...operator.map(line),
    '',
    "<issue> is an issue's id or its slug.",
    '',
    'Options of the editor commands:',
    ...HTTP_HELP,
    '  -h, --help             this help; "broadside <command> --help" for a command',
    '      --version          the version',
    '',
    'Exit status: 0 success, 1 the operation failed, 2 usage error.',
  ].join('\n');
}

function commandUsage(c: Command): string {
  return [
    `Usage: broadside ${c.name}${c.synopsis ? ` ${c.synopsis}` : ''}`,
    '',
    ...c.help,
    ...(c.http ? [] : ['', 'Options:']),
    '  -h, --help             this help',
  ].join('\n');
}

function version(): string {
  // Two levels below the package root both as source (src/cli) and compiled (dist/cli).
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
  return pkg.version ?? 'unknown';
}

/** util.parseArgs throws TypeErrors with ERR_PARSE_ARGS_* codes: those are usage errors. */
function parse(args: string[], options: Options, command?: string): { values: Values; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true });
    return { values: values as Values, positionals };
  } catch (err) {
    const code = (err as { code?: string }).code ?? '';
    if (!code.startsWith('ERR_PARSE_ARGS')) throw err;
    const message = (err as Error).message;
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const option = /'([^']+)'/.exec(message)?.[1];
      throw new UsageError(option ? `unknown option ${option}` : message, command);
    }
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      // "Option '--at <value>' argument missing": name the option the way the help does.
      const option = /'(-[^']+)'/.exec(message)?.[1];
      throw new UsageError(option ? `${option.replace(/^-\w, /, '').replace(/ <value>$/, '')} needs a value` : message, command);
    }
    throw new UsageError(message, command);
  }
}

async function dispatch(argv: string[]): Promise<number | undefined> {
  // The command is the first positional; the global options may come before it.
  const { tokens } = parseArgs({
    args: argv,
    options: { ...HTTP_OPTIONS, ...HELP_OPTION, version: { type: 'boolean' } },
    allowPositionals: true,
    strict: false,
    tokens: true,
  });
  const first = tokens.find((t) => t.kind === 'positional');
  if (!first) {
    const { values } = parse(argv, { ...HTTP_OPTIONS, ...HELP_OPTION, version: { type: 'boolean' } });
    if (values.version) {
      print(version());
      return 0;
    }
    if (values.help) {
      print(mainUsage());
      return 0;
    }
    throw new UsageError('no command given');
  }
  const rest = argv.filter((_, i) => i !== first.index);
  let name = first.value;
  if (name === 'help') {
    const { positionals } = parse(rest, {});
    if (positionals.length === 0) {
      print(mainUsage());
      return 0;
    }
    name = positionals[0]!;
    const c = byName.get(name);
    if (!c) throw new UsageError(`unknown command "${name}"`);
    print(commandUsage(c));
    return 0;
  }
  const command = byName.get(name);
  if (!command) throw new UsageError(`unknown command "${name}"`);
  const { values, positionals } = parse(rest, { ...(command.http ? HTTP_OPTIONS : {}), ...HELP_OPTION, ...command.options }, command.name);
  if (values.help) {
    print(commandUsage(command));
    return 0;
  }
  if (positionals.length < command.args.length) throw new UsageError(`missing <${command.args[positionals.length]}>`, command.name);
  if (positionals.length > command.args.length) throw new UsageError(`unexpected argument "${positionals[command.args.length]}"`, command.name);
  return command.run(positionals, values);
}

/** Puts a failure in words on stderr and gives its exit code. Never prints the token: no message carries it. */
function report(err: unknown): number {
  if (err instanceof UsageError) {
    note(`broadside: ${err.message}`);
    note(err.command ? `Run "broadside ${err.command} --help" for its usage.` : 'Run "broadside --help" for usage.');
    return 2;
  }
  if (err instanceof ApiError) {
    note(`error: ${err.code}: ${err.message}`);
    if (err.status === 401) note('The service refused the API token: check --token or API_TOKEN (or DATA_DIR, for the development token).');
    return 1;
  }
  if (err instanceof ServiceUnreachable) {
    note(`error: ${err.message}.`);
    note('Start it with "broadside start" (or "npm start"), or point --url or BROADSIDE_URL at where it runs.');
    return 1;
  }
  if (err instanceof CliFailure) {
    note(`error: ${err.message}`);
    return err.exitCode;
  }
  note(`error: ${(err as Error)?.message ?? String(err)}`);
  return 1;
}

/**
 * Runs `broadside <argv…>`: the exit code, or undefined when the command keeps the process
 * running (start, api, worker).
 */
export async function runCli(argv: string[]): Promise<number | undefined> {
  try {
    return await dispatch(argv);
  } catch (err) {
    return report(err);
  }
}
