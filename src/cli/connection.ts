import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { devSecretsFile } from '../config/dev-secrets.js';
import { CliFailure, UsageError } from './errors.js';

/** Where the HTTP commands talk to, and with which token. `tokenSource` names where the token came from, never the token. */
export type Connection = { base: string; token: string; tokenSource: string };

export type ConnectionFlags = { url?: string; token?: string };

/**
 * The service's address: --url, else BROADSIDE_URL, else the local service on PORT (3000). Only
 * these few variables are read: the HTTP commands work from any machine, without DATABASE_URL
 * or the rest of the service's configuration.
 */
function resolveBase(flags: ConnectionFlags, env: NodeJS.ProcessEnv): string {
  if (flags.url !== undefined) return checkBase(flags.url, '--url');
  if (env.BROADSIDE_URL) return checkBase(env.BROADSIDE_URL, 'BROADSIDE_URL');
  const port = env.PORT || '3000';
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) throw new UsageError(`PORT must be a port number, got "${port}"`);
  return `http://127.0.0.1:${Number(port)}`;
}

function checkBase(raw: string, from: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new UsageError(`${from} must be a URL such as http://127.0.0.1:3000`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`${from} must start with http:// or https://`);
  // A password in the URL would be printed in every message that names the service.
  if (u.username || u.password) throw new UsageError(`${from} must not carry credentials: give the API token with --token or API_TOKEN`);
  if (u.search || u.hash) throw new UsageError(`${from} must be the service's base address, without ? or #`);
  return `${u.origin}${u.pathname.replace(/\/+$/, '')}`;
}

/**
 * The editor's token: --token, else API_TOKEN, else the development token the service generated
 * into DATA_DIR/secrets.json (read only: the CLI never creates one the service would not know).
 */
/** What an Authorization header can carry: printable ASCII, no spaces. */
const PRINTABLE_TOKEN = /^[\x21-\x7e]+$/;

async function resolveToken(flags: ConnectionFlags, env: NodeJS.ProcessEnv, cwd = process.cwd()): Promise<{ token: string; tokenSource: string }> {
  const given =
    flags.token !== undefined ? { token: flags.token, tokenSource: '--token' } : env.API_TOKEN ? { token: env.API_TOKEN, tokenSource: 'API_TOKEN' } : undefined;
  if (given) {
    // Checked here: fetch would reject a header value with a line break with a message that is
    // easy to mistake for a network failure. The message never repeats the value.
    if (!PRINTABLE_TOKEN.test(given.token)) throw new UsageError(`the token from ${given.tokenSource} must be printable ASCII without spaces`);
    return given;
  }
  const file = devSecretsFile(path.resolve(cwd, env.DATA_DIR || '.data'));
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliFailure(
      `no API token: pass --token or set API_TOKEN${code === 'ENOENT' ? ` (no development token either: ${file} does not exist; the service creates it at its first start)` : ` (${file} cannot be read: ${code ?? 'error'})`}`,
    );
  }
  let token: unknown;
  try {
    token = (JSON.parse(text) as { apiToken?: unknown }).apiToken;
  } catch {
    token = undefined;
  }
  if (typeof token !== 'string' || !PRINTABLE_TOKEN.test(token))
    throw new CliFailure(`no API token: ${file} holds no valid "apiToken"; pass --token or set API_TOKEN`);
  return { token, tokenSource: file };
}

export async function resolveConnection(flags: ConnectionFlags, env: NodeJS.ProcessEnv = process.env): Promise<Connection> {
  const base = resolveBase(flags, env);
  return { base, ...(await resolveToken(flags, env)) };
}
