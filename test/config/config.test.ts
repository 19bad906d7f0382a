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
    for (const v of [
      'PORT',
      'PUBLIC_URL',
      'DATABASE_URL',
      'REDIS_URL',
      'SMTP_URL',
      'API_TOKEN',
      'MAIL_FROM',
      'SECRET',
      'BOUNCE_DOMAIN',
      'BOUNCE_SMTP_PORT',
      'POSTAL_ADDRESS',
    ]) {
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
      PORT: '8080',
      PUBLIC_URL: 'https://news.example.com/',
      SMTP_URL: 'smtp://u:p@relay:587',
      MAIL_FROM: '"Weekly Wire" <wire@example.com>',
      BOUNCE_DOMAIN: 'Bounces.Example.com',
      BOUNCE_SMTP_PORT: '2526',
      TRUST_PROXY: '1',
    });
    expect(c).toMatchObject({
      port: 8080,
      publicUrl: 'https://news.example.com',
      smtpUrl: 'smtp://u:p@relay:587',
      newsletterName: 'Weekly Wire',
      bounceDomain: 'bounces.example.com',
      bounceSmtpPort: 2526,
      trustProxy: { hops: 1 },
    });
  });

  describe('TRUST_PROXY', () => {
    const trust = (value: string) => parseConfig({ TRUST_PROXY: value }).trustProxy;
    const problem = (value: string) => {
      try {
        parseConfig({ TRUST_PROXY: value });
      } catch (err) {
        return (err as ConfigError).problems.join('\n');
      }
      throw new Error(`TRUST_PROXY=${value} was accepted`);
    };

    it('is off when unset, empty, false or 0', () => {
      expect(parseConfig({}).trustProxy).toBe(false);
      for (const off of ['', 'false', 'FALSE', '0', 'off', 'no']) expect(trust(off)).toBe(false);
    });

    it('takes a number of proxy hops', () => {
      expect(trust('1')).toEqual({ hops: 1 });
      expect(trust(' 2 ')).toEqual({ hops: 2 });
      expect(problem('11')).toMatch(/^TRUST_PROXY must be at most 10 proxy hops/);
    });

    it('takes proxy addresses and ranges, IPv4 and IPv6, comma or space separated, and the named ranges', () => {
      expect(trust('127.0.0.1')).toEqual({ addresses: ['127.0.0.1'] });
      expect(trust('127.0.0.1, 10.0.0.0/8 ::1 fd00::/8')).toEqual({ addresses: ['127.0.0.1', '10.0.0.0/8', '::1', 'fd00::/8'] });
      expect(trust('Loopback,uniquelocal')).toEqual({ addresses: ['loopback', 'uniquelocal'] });
    });

    it('refuses "true" (trust everybody) at start, saying what to set instead', () => {
      for (const everybody of ['true', 'TRUE', 'yes', 'on']) {
        const message = problem(everybody);
        expect(message).toMatch(/^TRUST_PROXY must not be ".+": trusting every proxy believes whatever X-Forwarded-For a client sends/);
        expect(message).toContain('the number of proxies in front of the service (1 for one nginx) or their addresses');
      }
    });

    it('refuses a /0 range, which trusts everybody too, and anything that is not an address', () => {
      expect(problem('0.0.0.0/0')).toMatch(/a \/0 range trusts every address/);
      expect(problem('10.0.0.0/8,::/0')).toMatch(/::\/0: a \/0 range/);
      const message = problem('10.0.0.0/33, nginx, 300.1.1.1, 10.0.0.1/x, fe80::1%eth0, 127.0.0.1');
      expect(message).toContain('not understood: "10.0.0.0/33", "nginx", "300.1.1.1", "10.0.0.1/x", "fe80::1%eth0"');
      expect(message).not.toContain('"127.0.0.1"');
    });
  });

  describe('HTTP timeouts and connection cap', () => {
    it('bounds every phase of a request by default, and caps connections per address', () => {
      expect(parseConfig({})).toMatchObject({
        httpHeadersTimeoutSeconds: 30,
        httpBodyTimeoutSeconds: 60,
        httpUploadTimeoutSeconds: 3600,
        httpIdleTimeoutSeconds: 60,
        httpKeepAliveTimeoutSeconds: 72,
        httpMaxConnectionsPerIp: 32,
      });
    });

    it('reads given values; 0 turns the cap off but no timeout', () => {
      expect(
        parseConfig({
          HTTP_HEADERS_TIMEOUT_SECONDS: '10',
          HTTP_BODY_TIMEOUT_SECONDS: '15',
          HTTP_UPLOAD_TIMEOUT_SECONDS: '120',
          HTTP_IDLE_TIMEOUT_SECONDS: '20',
          HTTP_KEEP_ALIVE_TIMEOUT_SECONDS: '5',
          HTTP_MAX_CONNECTIONS_PER_IP: '0',
        }),
      ).toMatchObject({
        httpHeadersTimeoutSeconds: 10,
        httpBodyTimeoutSeconds: 15,
        httpUploadTimeoutSeconds: 120,
        httpIdleTimeoutSeconds: 20,
        httpKeepAliveTimeoutSeconds: 5,
        httpMaxConnectionsPerIp: 0,
      });
      let error: unknown;
      try {
        parseConfig({
          HTTP_BODY_TIMEOUT_SECONDS: '0',
          HTTP_UPLOAD_TIMEOUT_SECONDS: '0',
          HTTP_IDLE_TIMEOUT_SECONDS: '0',
          HTTP_KEEP_ALIVE_TIMEOUT_SECONDS: 'never',
        });
      } catch (err) {
        error = err;
      }
      expect((error as ConfigError).problems.map((p) => p.split(' ')[0])).toEqual([
        'HTTP_BODY_TIMEOUT_SECONDS',
        'HTTP_UPLOAD_TIMEOUT_SECONDS',
        'HTTP_IDLE_TIMEOUT_SECONDS',
        'HTTP_KEEP_ALIVE_TIMEOUT_SECONDS',
      ]);
    });

    it("refuses a headers timeout longer than the upload's, which bounds the whole request", () => {
      expect(() => parseConfig({ HTTP_UPLOAD_TIMEOUT_SECONDS: '20', HTTP_HEADERS_TIMEOUT_SECONDS: '30' })).toThrow(
        'HTTP_HEADERS_TIMEOUT_SECONDS must not be longer than HTTP_UPLOAD_TIMEOUT_SECONDS',
      );
    });
  });

  it('reports every invalid variable at once, without echoing secrets', () => {
    let error: unknown;
    try {
      parseConfig({
        PORT: 'eighty',
        PUBLIC_URL: 'not a url',
        DATABASE_URL: 'mysql://root:hunter2@db/x',
        REDIS_URL: 'http://redis',
        SMTP_URL: 'ftp://relay',
        API_TOKEN: 'short',
        SECRET: 'also-short',
        MAIL_FROM: 'a\r\nBcc: x@y.z',
        BOUNCE_DOMAIN: 'not_a_domain',
        BOUNCE_SMTP_PORT: '70000',
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    expect(problems.map((p) => p.split(' ')[0])).toEqual([
      'PORT',
      'PUBLIC_URL',
      'DATABASE_URL',
      'REDIS_URL',
      'SMTP_URL',
      'API_TOKEN',
      'MAIL_FROM',
      'SECRET',
      'BOUNCE_DOMAIN',
      'BOUNCE_SMTP_PORT',
    ]);
    expect((error as Error).message).not.toContain('hunter2');
    expect((error as Error).message).not.toContain('also-short');
  });

  it('reads the bounce settings, and refuses bad ones without echoing keys', () => {
    const c = parseConfig({
      BOUNCE_RATE_THRESHOLD: '2.5%',
      COMPLAINT_RATE_THRESHOLD: '0.05',
      PAUSE_ON_HIGH_RATES: 'false',
      SOFT_BOUNCE_LIMIT: '5',
      SES_SNS_TOPIC_ARNS: 'arn:aws:sns:eu-west-1:123456789012:bounces, arn:aws:sns:eu-west-1:123456789012:complaints',
    });
    expect(c).toMatchObject({
      bounceRateThreshold: 2.5,
      complaintRateThreshold: 0.05,
      pauseOnHighRates: false,
      softBounceLimit: 5,
      softBounceWindowDays: 30,
      rateGuardMinMessages: 100,
      bounceMaxBytes: 1024 * 1024,
      webhookToleranceSeconds: 300,
      sesSnsTopicArns: ['arn:aws:sns:eu-west-1:123456789012:bounces', 'arn:aws:sns:eu-west-1:123456789012:complaints'],
    });
    let error: unknown;
    try {
      parseConfig({
        BOUNCE_RATE_THRESHOLD: '150',
        POSTMARK_WEBHOOK_USER: 'postmark',
        SENDGRID_WEBHOOK_PUBLIC_KEY: 'not-a-key-secretish',
        MAILGUN_WEBHOOK_SIGNING_KEY: 'short-key',
      });
    } catch (err) {
      error = err;
    }
    const problems = (error as ConfigError).problems;
    expect(problems.map((p) => p.split(' ')[0])).toEqual([
      'BOUNCE_RATE_THRESHOLD',
      'SENDGRID_WEBHOOK_PUBLIC_KEY',
      'MAILGUN_WEBHOOK_SIGNING_KEY',
      'POSTMARK_WEBHOOK_USER',
    ]);
    expect((error as Error).message).not.toContain('not-a-key-secretish');
    expect((error as Error).message).not.toContain('short-key');
  });

  it("reads the bounce listener's limits and retention, with defaults sound for an honest sender", () => {
    expect(parseConfig({})).toMatchObject({
      bounceMaxBytes: 1024 * 1024,
      bounceMaxConnections: 100,
      bounceMaxConnectionsPerIp: 10,
      bounceMessagesPerIpPerMinute: 60,
      bounceMaxRecipients: 10,
      bounceBufferBytes: 16 * 1024 * 1024,
      bounceTrustedIps: [],
      bounceReportRetentionDays: 30,
      bounceUnmatchedReportRetentionDays: 90,
    });
    const c = parseConfig({
      BOUNCE_MAX_BYTES: '200000',
      BOUNCE_MAX_CONNECTIONS: '20',
      BOUNCE_MAX_CONNECTIONS_PER_IP: '3',
      BOUNCE_MESSAGES_PER_IP_PER_MINUTE: '600',
      BOUNCE_MAX_RECIPIENTS: '1',
      BOUNCE_BUFFER_BYTES: '1000000',
      BOUNCE_TRUSTED_IPS: '192.0.2.7, 10.0.0.0/8 2001:db8::/32',
      BOUNCE_REPORT_RETENTION_DAYS: '0',
      BOUNCE_UNMATCHED_REPORT_RETENTION_DAYS: '365',
    });
    expect(c).toMatchObject({
      bounceMaxBytes: 200000,
      bounceMaxConnections: 20,
      bounceMaxConnectionsPerIp: 3,
      bounceMessagesPerIpPerMinute: 600,
      bounceMaxRecipients: 1,
      bounceBufferBytes: 1000000,
      bounceReportRetentionDays: 0,
      bounceUnmatchedReportRetentionDays: 365,
    });
    expect(c.bounceTrustedIps.map(([ip, bits]) => `${ip.toString()}/${bits}`)).toEqual(['192.0.2.7/32', '10.0.0.0/8', '2001:db8::/32']);

    let error: unknown;
    try {
      parseConfig({
        BOUNCE_MAX_CONNECTIONS: '0',
        BOUNCE_MESSAGES_PER_IP_PER_MINUTE: 'many',
        BOUNCE_TRUSTED_IPS: '10.0.0.0/8, 10.1/16, relay.example.com, ::1/129',
        BOUNCE_UNMATCHED_REPORT_RETENTION_DAYS: '-1',
        BOUNCE_MAX_BYTES: '2000000',
        BOUNCE_BUFFER_BYTES: '1000000',
      });
    } catch (err) {
      error = err;
    }
    const problems = (error as ConfigError).problems;
    expect(problems).toEqual([
      expect.stringMatching(/^BOUNCE_MAX_CONNECTIONS must be between 1 and/),
      expect.stringMatching(/^BOUNCE_MESSAGES_PER_IP_PER_MINUTE must be a whole number/),
      'BOUNCE_TRUSTED_IPS must be IP addresses or networks such as 192.0.2.7 or 10.0.0.0/8, got "10.1/16", "relay.example.com", "::1/129"',
      expect.stringMatching(/^BOUNCE_UNMATCHED_REPORT_RETENTION_DAYS must be a whole number/),
      'BOUNCE_BUFFER_BYTES (1000000) must be at least BOUNCE_MAX_BYTES (2000000): a mail the listener allows must fit in memory',
    ]);
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
