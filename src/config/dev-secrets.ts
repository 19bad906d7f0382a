import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from './schema.js';

export type AppConfig = Omit<Config, 'apiToken' | 'secret'> & { apiToken: string; secret: string };

type Persisted = { apiToken: string; secret: string };

/** Where the generated development token and secret are kept (the CLI reads the token there). */
export const devSecretsFile = (dataDir: string): string => path.resolve(dataDir, 'secrets.json');

/**
 * When API_TOKEN or SECRET is unset (a laptop), use values generated once and kept in
 * DATA_DIR/secrets.json so tokens in already-sent emails keep working across restarts.
 * Two processes starting at once agree: the file is created exclusively, the loser reads it.
 */
export async function withDevSecrets(config: Config): Promise<{ config: AppConfig; generatedToken: boolean }> {
  if (config.apiToken && config.secret) {
    return { config: { ...config, apiToken: config.apiToken, secret: config.secret }, generatedToken: false };
  }
  const file = devSecretsFile(config.dataDir);
  const persisted = await readOrCreate(file);
  return {
    config: { ...config, apiToken: config.apiToken ?? persisted.apiToken, secret: config.secret ?? persisted.secret },
    generatedToken: !config.apiToken,
  };
}

async function readOrCreate(file: string): Promise<Persisted> {
  const fresh: Persisted = {
    apiToken: randomBytes(24).toString('base64url'),
    secret: randomBytes(32).toString('base64url'),
  };
  await mkdir(path.dirname(file), { recursive: true });
  try {
    await writeFile(file, `${JSON.stringify(fresh, null, 2)}\n`, { flag: 'wx', mode: 0o600 });
    return fresh;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  // Another process may have created the file an instant ago and not written it yet.
  for (let attempt = 0; ; attempt++) {
    const text = await readFile(file, 'utf8');
    try {
      const parsed = JSON.parse(text) as Partial<Persisted>;
      if (typeof parsed.apiToken === 'string' && typeof parsed.secret === 'string') {
        return { apiToken: parsed.apiToken, secret: parsed.secret };
      }
    } catch {
      // half-written: read again below
    }
    if (attempt >= 50) throw new Error(`${file} is not a valid secrets file; delete it to regenerate`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
