import { html, SafeHtml } from './html.js';

const STYLE = `
:root { color-scheme: light dark; --fg:#1f2933; --muted:#52606d; --bg:#f5f7fa; --card:#fff; --accent:#1d4ed8; --err:#b91c1c; --line:#d9e2ec; }
@media (prefers-color-scheme: dark) { :root { --fg:#e4e7eb; --muted:#9aa5b1; --bg:#111827; --card:#1f2937; --accent:#93b4ff; --err:#fca5a5; --line:#374151; } }
* { box-sizing: border-box; }
body { margin:0; font:16px/1.6 -apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif; color:var(--fg); background:var(--bg); }
main { max-width:34rem; margin:0 auto; padding:2.5rem 1rem; }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:1.5rem; }
h1 { font-size:1.6rem; line-height:1.25; margin:0 0 .75rem; }
p { margin:.5rem 0 1rem; }
label { display:block; font-weight:600; margin:1rem 0 .25rem; }
.hint { font-weight:400; color:var(--muted); }
input[type=email], input[type=text] { width:100%; font:inherit; padding:.65rem .75rem; border:1px solid var(--muted); border-radius:6px; background:var(--card); color:var(--fg); }
input:focus-visible, button:focus-visible, a:focus-visible { outline:3px solid var(--accent); outline-offset:2px; }
button { font:inherit; font-weight:600; margin-top:1.25rem; padding:.7rem 1.4rem; border:0; border-radius:6px; background:var(--accent); color:#fff; cursor:pointer; min-height:44px; }
@media (prefers-color-scheme: dark) { button { color:#111827; } }
button.secondary { background:transparent; color:var(--accent); border:1px solid var(--accent); }
button.danger { background:var(--err); }
a { color:var(--accent); }
.error { color:var(--err); font-weight:600; }
.muted { color:var(--muted); font-size:.9rem; }
/* The honeypot: kept out of sight and out of the accessibility tree; bots fill it, people do not. */
.hp { position:absolute; left:-10000px; width:1px; height:1px; overflow:hidden; }
dl { display:grid; grid-template-columns:max-content 1fr; gap:.25rem 1rem; }
dt { color:var(--muted); } dd { margin:0; overflow-wrap:anywhere; }
table { border-collapse:collapse; width:100%; } td, th { text-align:left; padding:.4rem; border-bottom:1px solid var(--line); vertical-align:top; }
/* An issue's web version: the editor's Markdown, sanitised. Nothing in it may overflow a phone. */
.issue { overflow-wrap:anywhere; }
.issue h2 { font-size:1.3rem; line-height:1.3; margin:2rem 0 .75rem; }
.issue h3 { font-size:1.1rem; margin:1.5rem 0 .5rem; }
.issue img { max-width:100%; height:auto; }
.issue pre { white-space:pre-wrap; background:var(--bg); padding:.75rem; border-radius:6px; }
.issue blockquote { margin:0 0 1rem; padding-left:1rem; border-left:3px solid var(--line); color:var(--muted); }
.issue table { display:block; overflow-x:auto; }
.toc { background:var(--bg); border-radius:8px; padding:.75rem 1rem; margin:1.5rem 0; }
.toc h2 { font-size:.9rem; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); margin:.25rem 0 .5rem; }
.archive li { margin:0 0 1rem; }
`;

export const pageHeaders = {
  'content-type': 'text/html; charset=utf-8',
  // Pages run no script; forms may post only back to us.
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

export function page(title: string, body: SafeHtml, opts: { wide?: boolean; reading?: boolean; newsletter?: string; indexable?: boolean } = {}): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${opts.indexable ? '' : html`<meta name="robots" content="noindex">`}
<title>${title}${opts.newsletter ? ` · ${opts.newsletter}` : ''}</title>
<style>${new SafeHtml(STYLE)}${opts.wide ? new SafeHtml('main{max-width:64rem}') : ''}${opts.reading ? new SafeHtml('main{max-width:44rem}') : ''}</style>
</head>
<body>
<main id="main">
<div class="card">
${body}
</div>
</main>
</body>
</html>`.value;
}
