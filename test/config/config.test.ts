import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { ConfigError, configVariables, parseConfig, withDevSecrets } from '../../src/config/index.js';

describe('configuration', () => {
  it('has working laptop defaults for every variable of the contract', () => {
    const c = parseConfig({});
    expect(c).toMatchObject({
      port: 3000,
      publicUrl: 'http://localhost:3000',
      databaseUrl: 'postgres://localhost:5432/broadside',
      redisUrl: 'redis://127.0.0.1:6379',
      smtpUrl: undefined,
      apiToken: undefined,
      mailFrom: 'Newsletter <newsletter@localhost>',
      secret: undefined,
      bounceDomain: undefined,
      bounceSmtpPort: undefined,
      postalAddress: undefined,
      newsletterName: 'Newsletter',
    });
  });

  it('reads every variable named in PRODUCT.md', () => {
    for (const v of ['PORT', 'PUBLIC_URL', 'DATABASE_URL', 'REDIS_URL', 'SMTP_URL', 'API_TOKEN', 'MAIL_FROM', 'SECRET', 'BOUNCE_DOMAIN', 'BOUNCE_SMTP_PORT', 'POSTAL_ADDRESS']) {
      expect(configVariables).toContain(v);
    }
  });

  it('PUBLIC_URL, when unset, follows PORT (links in emails reach this machine on the port it listens on)', () => {
    expect(parseConfig({ PORT: '3311' }).publicUrl).toBe('http://localhost:3311');
    expect(parseConfig({ PORT: '3311', PUBLIC_URL: '' }).publicUrl).toBe('http://localhost:3311');
    expect(parseConfig({ PORT: '3311', PUBLIC_URL: 'https://news.example.com' }).publicUrl).toBe('https://news.example.com');
  });

  it('parses given values and strips the trailing slash of PUBLIC_URL', () => {
    const c = parseConfig({
      PORT: '8080', PUBLIC_URL: 'https://news.example.com/', SMTP_URL: 'smtp://u:p@relay:587', MAIL_FROM: '"Weekly Wire" <wire@example.com>',
      BOUNCE_DOMAIN: 'Bounces.Example.com', BOUNCE_SMTP_PORT: '2526', TRUST_PROXY: 'true',
    });
    expect(c).toMatchObject({ port: 8080, publicUrl: 'https://news.example.com', smtpUrl: 'smtp://u:p@relay:587', newsletterName: 'Weekly Wire', bounceDomain: 'bounces.example.com', bounceSmtpPort: 2526, trustProxy: true });
  });

  it('reports every invalid variable at once, without echoing secrets', () => {
    let error: unknown;
    try {
      parseConfig({
        PORT: 'eighty', PUBLIC_URL: 'not a url', DATABASE_URL: 'mysql://root:hunter2@db/x', REDIS_URL: 'http://redis',
        SMTP_URL: 'ftp://relay', API_TOKEN: 'short', SECRET: 'also-short', MAIL_FROM: 'a\r\nBcc: x@y.z', BOUNCE_DOMAIN: 'not_a_domain', BOUNCE_SMTP_PORT: '70000',
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    expect(problems.map((p) => p.split(' ')[0])).toEqual([
      'PORT', 'PUBLIC_URL', 'DATABASE_URL', 'REDIS_URL', 'SMTP_URL', 'API_TOKEN', 'MAIL_FROM', 'SECRET', 'BOUNCE_DOMAIN', 'BOUNCE_SMTP_PORT',
    ]);
    expect((error as Error).message).not.toContain('hunter2');
    expect((error as Error).message).not.toContain('also-short');
  });

  it('reads the bounce settings, and refuses bad ones without echoing keys', () => {
    const c = parseConfig({
      BOUNCE_RATE_THRESHOLD: '2.5%', COMPLAINT_RATE_THRESHOLD: '0.05', PAUSE_ON_HIGH_RATES: 'false', SOFT_BOUNCE_LIMIT: '5',
      SES_SNS_TOPIC_ARNS: 'arn:aws:sns:eu-west-1:123456789012:bounces, arn:aws:sns:eu-west-1:123456789012:complaints',
    });
    expect(c).toMatchObject({
      bounceRateThreshold: 2.5, complaintRateThreshold: 0.05, pauseOnHighRates: false, softBounceLimit: 5, softBounceWindowDays: 30,
      rateGuardMinMessages: 100, bounceMaxBytes: 10 * 1024 * 1024, webhookToleranceSeconds: 300,
      sesSnsTopicArns: ['arn:aws:sns:eu-west-1:123456789012:bounces', 'arn:aws:sns:eu-west-1:123456789012:complaints'],
    });
    let error: unknown;
    try {
      parseConfig({
        BOUNCE_RATE_THRESHOLD: '150', POSTMARK_WEBHOOK_USER: 'postmark', SENDGRID_WEBHOOK_PUBLIC_KEY: 'not-a-key-secretish',
        MAILGUN_WEBHOOK_SIGNING_KEY: 'short-key',
      });
    } catch (err) {
      error = err;
    }
    const problems = (error as ConfigError).problems;
    expect(problems.map((p) => p.split(' ')[0])).toEqual(['BOUNCE_RATE_THRESHOLD', 'SENDGRID_WEBHOOK_PUBLIC_KEY', 'MAILGUN_WEBHOOK_SIGNING_KEY', 'POSTMARK_WEBHOOK_USER']);
    expect((error as Error).message).not.toContain('not-a-key-secretish');
    expect((error as Error).message).not.toContain('short-key');
  });

  it('generates API_TOKEN and SECRET once, persists them, and two processes starting together agree', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'broadside-config-'));
    try {
      const base = parseConfig({ DATA_DIR: dir });
      const [a, b] = await Promise.all([withDevSecrets(base), withDevSecrets(base)]);
      expect(a.config.apiToken).toHaveLength(32);
      expect(a.config.secret.length).toBeGreaterThanOrEqual(32);
      expect(b.config.apiToken).toBe(a.config.apiToken);
      expect(b.config.secret).toBe(a.config.secret);
      expect(a.generatedToken).toBe(true);
      const later = await withDevSecrets(base);
      expect(later.config.apiToken).toBe(a.config.apiToken);
      const stored = JSON.parse(await readFile(path.join(dir, 'secrets.json'), 'utf8'));
      expect(stored.apiToken).toBe(a.config.apiToken);

      const given = await withDevSecrets(parseConfig({ DATA_DIR: dir, API_TOKEN: 'given-token-0123456789', SECRET: 'x'.repeat(40) }));
      expect(given).toMatchObject({ generatedToken: false, config: { apiToken: 'given-token-0123456789', secret: 'x'.repeat(40) } });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
