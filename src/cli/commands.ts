import type { ParseArgsConfig } from 'node:util';
import { ApiClient } from './api-client.js';
import { resolveConnection } from './connection.js';
import { runDoctor } from './doctor.js';
import { UsageError } from './errors.js';
import { importFile } from './import-csv.js';
import { printPreviewLink, uploadFile } from './media.js';
import { publishFile, unpublishIssue } from './publish.js';
import { controlSend, rescheduleSend, retryFailedSend, sendIssue, unscheduleSend, watchIssue } from './send.js';
import { migrateDatabase, serve } from './serve.js';
import { showStatus } from './status.js';

export type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | undefined>;

export type Command = {
  name: string;
  /** The arguments after the name, as the usage line shows them. */
  synopsis: string;
  summary: string;
  /** Lines after the usage line of `broadside <command> --help`. */
  help: string[];
  options: Options;
  /** Names of the positional arguments it requires (it takes no others). */
  args: string[];
  /** Talks to the service over HTTP (takes --url and --token). */
  http: boolean;
  /** The exit code, or undefined for a command that keeps running (the service's roles). */
  run(positionals: string[], values: Values): Promise<number | undefined>;
};

export const HTTP_OPTIONS: Options = {
  url: { type: 'string' },
  token: { type: 'string' },
};

export const HELP_OPTION: Options = { help: { type: 'boolean', short: 'h' } };

const INTERVAL: Options = { interval: { type: 'string' } };

export const HTTP_HELP = [
  '      --url <url>        the service (default: BROADSIDE_URL, else http://127.0.0.1:$PORT, PORT 3000)',
  "      --token <token>    the editor's API token (default: API_TOKEN, else the development token",
  '                         in $DATA_DIR/secrets.json, DATA_DIR .data)',
];

const INTERVAL_HELP = '      --interval <s>     seconds between progress lines when output is not a terminal (default 5)';

const str = (values: Values, name: string): string | undefined => {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
};

/** --interval, in seconds: a positive number, at most an hour. */
function intervalOf(values: Values, command: string): number {
  const raw = str(values, 'interval');
  if (raw === undefined) return 5;
  const n = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(raw.trim()) || !(n > 0) || n > 3600)
    throw new UsageError(`--interval must be a number of seconds above 0 and at most 3600, got "${raw}"`, command);
  return n;
}

async function client(values: Values): Promise<ApiClient> {
  return new ApiClient(await resolveConnection({ url: str(values, 'url'), token: str(values, 'token') }));
}

const issueControl = (action: 'pause' | 'resume' | 'cancel', summary: string, help: string[]): Command => ({
  name: action,
  synopsis: '<issue> [options]',
  summary,
  help,
  options: {},
  args: ['issue'],
  http: true,
  run: async ([ref], values) => controlSend(await client(values), ref!, action),
});

export const COMMANDS: Command[] = [
  {
    name: 'publish',
    synopsis: '<file.md> [options]',
    summary: 'create or update an issue from a Markdown file and publish it to the archive',
    help: [
      'Creates the issue from a Markdown file, then publishes it to the archive and the feed',
      '(without mailing it). The file starts with YAML front matter:',
      '',
      '  ---',
      '  subject: The Relay #42',
      '  preheader: Optional preview text',
      '  ---',
      '  Markdown of the issue…',
      '',
      'The issue\'s id is written into the front matter ("id: 12"). Publishing the file again',
      'updates that issue instead of creating another (a file without an id: the newest issue',
      'with the slug its subject gives). A draft is updated; an issue already published or sent',
      'is corrected only with --correct (its web version, the archive and the feed change; mail',
      'already sent does not).',
      '',
      "Prints the issue's id, slug, revision, web version and HTML size.",
      '',
      'Options:',
      '      --draft            create or update the issue as a draft only (not published)',
      '      --correct          correct the issue if it is already published or sent',
      '      --new              create a new issue even if the file was published before',
      '      --subject <text>   the subject (overrides the front matter; needed for a file without it)',
      '      --preheader <text> the preheader (overrides the front matter)',
      '      --json             print the issue as JSON',
      ...HTTP_HELP,
    ],
    options: {
      draft: { type: 'boolean' },
      correct: { type: 'boolean' },
      new: { type: 'boolean' },
      subject: { type: 'string' },
      preheader: { type: 'string' },
      json: { type: 'boolean' },
    },
    args: ['file.md'],
    http: true,
    run: async ([file], values) => {
      if (values.correct === true && values.new === true) throw new UsageError('--correct and --new exclude each other', 'publish');
      return publishFile(await client(values), file!, {
        draft: values.draft === true,
        correct: values.correct === true,
        new: values.new === true,
        subject: str(values, 'subject'),
        preheader: str(values, 'preheader'),
        json: values.json === true,
      });
    },
  },
  {
    name: 'unpublish',
    synopsis: '<issue> [options]',
    summary: 'take an issue out of the archive and the feed',
    help: [
      'Takes the issue out of the archive and the feed; its web version answers 410 Gone.',
      'An issue never sent becomes a draft again (it can be edited, published again or deleted);',
      'a sent one stays sent. "broadside publish <file.md>" puts it back.',
      "<issue> is the issue's id or slug.",
      '',
      'Options:',
      ...HTTP_HELP,
    ],
    options: {},
    args: ['issue'],
    http: true,
    run: async ([ref], values) => unpublishIssue(await client(values), ref!),
  },
  {
    name: 'send',
    synopsis: '<issue> [options]',
    summary: 'send an issue to every active reader and watch its progress',
    help: [
      "Starts the issue's one send (it publishes the issue) and shows its progress until it is done.",
      'It first shows how many readers the send will reach and asks "Send to N readers? [y/N]";',
      'without a terminal to ask on it refuses (exit 1) unless --yes is given. If the count moves by',
      'more than max(10, 1 %) before the send starts, the service refuses it with the new count.',
      'Sending an issue that already has its send sends nothing twice: it watches that send. After a',
      'cancelled send that reached some readers, it sends to the readers that send did not reach.',
      "<issue> is the issue's id or slug.",
      '',
      'Ctrl-C stops watching; the send goes on (see "broadside status", "broadside cancel").',
      'Exit status: 0 when the send is done, 1 when it was cancelled, 130 after Ctrl-C.',
      '',
      'Options:',
      '      --at <time>        schedule the send instead, at an ISO 8601 time',
      '                         (2026-11-12T09:00:00Z, 2026-11-12T10:00+01:00), and return',
      '      --detach           return once the send is started, without watching it',
      '  -y, --yes              send without asking for confirmation (needed when stdin is not a terminal)',
      INTERVAL_HELP,
      ...HTTP_HELP,
    ],
    options: { at: { type: 'string' }, detach: { type: 'boolean' }, yes: { type: 'boolean', short: 'y' }, ...INTERVAL },
    args: ['issue'],
    http: true,
    run: async ([ref], values) => {
      const intervalSeconds = intervalOf(values, 'send');
      return sendIssue(await client(values), ref!, { at: str(values, 'at'), detach: values.detach === true, yes: values.yes === true, intervalSeconds });
    },
  },
  {
    name: 'reschedule',
    synopsis: '<issue> --at <time> [options]',
    summary: "move an issue's scheduled send to another time (--at)",
    help: [
      "Moves the issue's scheduled send to another time, which must be in the future. Refused once",
      'the send has started.',
      '',
      'Options:',
      '      --at <time>        the new time, ISO 8601 (2026-11-12T09:00:00Z, 2026-11-12T10:00+01:00)',
      ...HTTP_HELP,
    ],
    options: { at: { type: 'string' } },
    args: ['issue'],
    http: true,
    run: async ([ref], values) => {
      const at = str(values, 'at');
      if (at === undefined) throw new UsageError('--at <time> is required', 'reschedule');
      return rescheduleSend(await client(values), ref!, at);
    },
  },
  {
    name: 'unschedule',
    synopsis: '<issue> [options]',
    summary: "take an issue's scheduled send back (the issue is as it was before)",
    help: [
      "Takes the issue's scheduled send back before it starts: nothing is mailed, and the issue is a",
      'draft again (editable, deletable), or published if it was before. Refused once the send has',
      'started (see "broadside cancel").',
      '',
      'Options:',
      ...HTTP_HELP,
    ],
    options: {},
    args: ['issue'],
    http: true,
    run: async ([ref], values) => unscheduleSend(await client(values), ref!),
  },
  {
    name: 'retry-failed',
    synopsis: '<issue> [options]',
    summary: "send an issue's failed messages again",
    help: [
      "Queues the send's failed messages again (retries spent on temporary errors), for readers who",
      'are still active (never bounced, complained or unsubscribed ones), and prints how many.',
      '',
      'Options:',
      ...HTTP_HELP,
    ],
    options: {},
    args: ['issue'],
    http: true,
    run: async ([ref], values) => retryFailedSend(await client(values), ref!),
  },
  {
    name: 'watch',
    synopsis: '<issue> [options]',
    summary: "watch the progress of an issue's send",
    help: [
      "Shows the progress of the issue's send until it is done (a scheduled send: until it",
      'starts and is done). Ctrl-C stops watching; the send goes on.',
      'Exit status: 0 when the send is done, 1 when it was cancelled, 130 after Ctrl-C.',
      '',
      'Options:',
      INTERVAL_HELP,
      ...HTTP_HELP,
    ],
    options: { ...INTERVAL },
    args: ['issue'],
    http: true,
    run: async ([ref], values) => {
      const intervalSeconds = intervalOf(values, 'watch');
      return watchIssue(await client(values), ref!, { intervalSeconds });
    },
  },
  {
    name: 'status',
    synopsis: '<issue> [options]',
    summary: "show an issue and its send's counts",
    help: [
      'Prints the issue and the counts of its send (queued, submitted, failed, bounced, cancelled).',
      '',
      'Options:',
      '      --json             print {"issue": …, "send": … or null} as JSON',
      ...HTTP_HELP,
    ],
    options: { json: { type: 'boolean' } },
    args: ['issue'],
    http: true,
    run: async ([ref], values) => showStatus(await client(values), ref!, { json: values.json === true }),
  },
  issueControl('pause', "pause an issue's send", [
    "Stops new submissions of the issue's send (within a second); its messages stay queued.",
    '',
    'Options:',
    ...HTTP_HELP,
  ]),
  issueControl('resume', 'resume a paused send', ['Continues a paused send; nothing is sent twice.', '', 'Options:', ...HTTP_HELP]),
  issueControl('cancel', "cancel an issue's send", [
    "Ends the issue's send: what is still queued is cancelled; messages in flight finish.",
    '',
    'Options:',
    ...HTTP_HELP,
  ]),
  {
    name: 'import',
    synopsis: '<file.csv> [options]',
    summary: 'add subscribers from a CSV file',
    help: [
      'Uploads a CSV file to the subscriber import, as a stream, and prints its report. The',
      'file has a header row with an "email" column and optionally "name" and "status".',
      'Rows become active subscribers; suppressed addresses and rows whose status is pending,',
      'unsubscribed, bounced or complained are rejected (each listed with its line).',
      '',
      'Options:',
      "      --json             print the import's report as JSON",
      INTERVAL_HELP,
      ...HTTP_HELP,
    ],
    options: { json: { type: 'boolean' }, ...INTERVAL },
    args: ['file.csv'],
    http: true,
    run: async ([file], values) => {
      const intervalSeconds = intervalOf(values, 'import');
      return importFile(await client(values), file!, { json: values.json === true, intervalSeconds });
    },
  },
  {
    name: 'preview',
    synopsis: '<issue> [options]',
    summary: "print a link to the issue's preview in a browser",
    help: [
      "Prints a signed link that opens the issue's preview in a browser, as a reader receives it:",
      'desktop and phone width, HTML and text. The link needs no token and opens only this issue,',
      'read-only, for PREVIEW_LINK_TTL_MINUTES (an hour unless the service says otherwise).',
      "<issue> is the issue's id or slug.",
      '',
      'Options:',
      '      --json             print {"url", "expiresAt"} as JSON',
      ...HTTP_HELP,
    ],
    options: { json: { type: 'boolean' } },
    args: ['issue'],
    http: true,
    run: async ([ref], values) => printPreviewLink(await client(values), ref!, { json: values.json === true }),
  },
  {
    name: 'upload',
    synopsis: '<image> [options]',
    summary: 'upload an image (PNG, JPEG, GIF, WebP) and print its URL for the Markdown',
    help: [
      'Uploads an image to the service, which reads its type from its bytes (PNG, JPEG, GIF or WebP;',
      'not SVG) and keeps it once however often it is uploaded. Prints its public URL, for',
      'the Markdown: ![description](URL). The service refuses files over MEDIA_MAX_BYTES (5 MiB).',
      '',
      'Options:',
      '      --json             print the stored image (url, hash, type, bytes, width, height) as JSON',
      ...HTTP_HELP,
    ],
    options: { json: { type: 'boolean' } },
    args: ['image'],
    http: true,
    run: async ([file], values) => uploadFile(await client(values), file!, { json: values.json === true }),
  },
  {
    name: 'start',
    synopsis: '',
    summary: 'run the API and a worker in one process (one machine)',
    help: [
      'Creates and migrates the database if needed, then runs the HTTP API and a worker until',
      'SIGTERM or Ctrl-C. Configured by environment variables (see the README).',
    ],
    options: {},
    args: [],
    http: false,
    run: async () => serve(['api', 'worker']),
  },
  {
    name: 'api',
    synopsis: '',
    summary: 'run the HTTP API only',
    help: ['Creates and migrates the database if needed, then runs the HTTP API (and, without SMTP_URL,', 'the capture server) until SIGTERM or Ctrl-C.'],
    options: {},
    args: [],
    http: false,
    run: async () => serve(['api']),
  },
  {
    name: 'worker',
    synopsis: '',
    summary: 'run a worker only (as many as you like, on any machine)',
    help: [
      'Creates and migrates the database if needed, then runs a worker until SIGTERM or Ctrl-C.',
      'Run as many as the relay can take, against the same Redis and Postgres.',
    ],
    options: {},
    args: [],
    http: false,
    run: async () => serve(['worker']),
  },
  {
    name: 'doctor',
    synopsis: '',
    summary: 'check Postgres, Redis, the SMTP relay and the ports; show the banner',
    help: [
      'Checks what "broadside start" needs, with the same environment variables: Postgres (the role,',
      'the database, its migrations), Redis (and that its maxmemory-policy is noeviction), the SMTP',
      "relay's greeting and login (SMTP_URL), and the ports (PORT, CAPTURE_SMTP_PORT, BOUNCE_SMTP_PORT;",
      'a running Broadside on them is fine). Each check is printed with ✓, ! (a warning) or ✗ and',
      "what to try, then the banner the service prints at start (its address, the editor's token and",
      'where mail goes). Changes nothing. Exit status: 0 when no check failed, 1 otherwise.',
    ],
    options: {},
    args: [],
    http: false,
    run: async () => runDoctor(),
  },
  {
    name: 'migrate',
    synopsis: '',
    summary: 'create the database if missing and apply migrations',
    help: ['Creates the database named by DATABASE_URL if it is missing, applies pending migrations,', 'and exits. Safe to run while other processes start.'],
    options: {},
    args: [],
    http: false,
    run: async () => migrateDatabase(),
  },
];
