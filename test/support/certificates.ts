// Throw-away self-signed certificates for the tests that need one: the SNS signature tests sign
// with the key and serve the certificate, and the HTTPS fetcher's test runs a server with it.
// Made by the openssl command line (Node has no API to issue a certificate); nothing is left on disk.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export type Certificate = { certPem: string; keyPem: string };

/** A fresh RSA 2048 key and a certificate for `commonName`, valid two days; `ipAddress` adds it as a subjectAltName. */
export function selfSignedCertificate(commonName: string, ipAddress?: string): Certificate {
  const dir = mkdtempSync(path.join(tmpdir(), 'broadside-cert-'));
  try {
    const keyFile = path.join(dir, 'key.pem');
    const certFile = path.join(dir, 'cert.pem');
    const altName = ipAddress ? ['-addext', `subjectAltName=IP:${ipAddress}`] : [];
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${commonName}`, ...altName, '-keyout', keyFile, '-out', certFile],
      { stdio: 'ignore' },
    );
    return { certPem: readFileSync(certFile, 'utf8'), keyPem: readFileSync(keyFile, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
