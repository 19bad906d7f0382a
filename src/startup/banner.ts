import path from 'node:path';
import { redactUrl, type AppConfig } from '../config/index.js';

export type BannerFacts = {
  /** The service is up (at start, or doctor found it answering); else the banner says where it will run. */
  running: boolean;
  /** PUBLIC_URL was unset, so it follows PORT. */
  publicUrlFollowsPort: boolean;
  /** Where the token comes from: generated into DATA_DIR (then it is shown), or API_TOKEN. */
  tokenGenerated: boolean;
  /** The capture server runs in this process (SMTP_URL unset). */
  capturing: boolean;
  /** Offer Enter to show the banner again (stdin is a terminal). */
  reprintOnEnter?: boolean;
};

/**
 * What a person starting the service needs in front of them: where it runs, the editor's token,
 * where mail goes, and where the editor's app is. Printed last at start (so the log does not scroll it away), again on
 * Enter, and by `broadside doctor`. The token is shown only when it was generated for
 * development; a token from API_TOKEN is the operator's own and stays out of the terminal.
 */
export function bannerLines(config: AppConfig, facts: BannerFacts): string[] {
  const url = config.publicUrl;
  const lines = [
    `Broadside ${facts.running ? 'is running at' : 'will run at'} ${url}${facts.publicUrlFollowsPort ? ` (PUBLIC_URL unset: it follows PORT=${config.port})` : ''}`,
    !facts.tokenGenerated
      ? 'Editor API token: the value of API_TOKEN'
      : config.apiToken
        ? `Editor API token (generated, kept in ${path.join(config.dataDir, 'secrets.json')}): ${config.apiToken}`
        : `Editor API token: generated at the first start, into ${path.join(config.dataDir, 'secrets.json')}`,
    config.smtpUrl
      ? `Mail goes to the relay at ${redactUrl(config.smtpUrl)} (SMTP_URL)`
      : facts.capturing
        ? `Mail is captured, not delivered: ${url}/admin/mail (any user name, the token as password)`
        : `Mail goes to the capture server of the API process on 127.0.0.1:${config.captureSmtpPort} (SMTP_URL unset)`,
    `Editor's app: ${url}/editor (sign in with the token)`,
    `Sign-up page: ${url}/   API docs: ${url}/docs   Checks: broadside doctor`,
  ];
  if (facts.reprintOnEnter) lines.push('Press Enter to show this again.');
  return lines;
}

/** The banner as printed: a blank line around it, each line indented, so it stands out of the log. */
export function bannerText(config: AppConfig, facts: BannerFacts): string {
  return `\n${bannerLines(config, facts)
    .map((l) => `  ${l}`)
    .join('\n')}\n\n`;
}
