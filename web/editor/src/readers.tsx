// Readers: search and filter the list (keyset-paged), add one, import a CSV (every rejected line
// with its reason), export the list as CSV; each reader links to their page (reader.tsx).
import { useEffect, useState } from 'preact/hooks';
import { type ApiError, get, request, upload } from './api';
import { BASE } from './router';
import { ErrorText, OkText } from './messages';
import { usePagedList } from './paged-list';

type Reader = {
  id: number;
  email: string;
  name: string | null;
  status: string;
  createdAt: string;
  consent: { at: string; source: string; ip: string | null; userAgent: string | null };
};
type Counts = Record<string, number> & { total: number };
type ImportReport = {
  rows: number;
  accepted: number;
  rejected: number;
  rejections: { line: number; email: string; message: string }[];
  rejectionsTruncated: boolean;
};

const STATUSES = ['active', 'pending', 'unsubscribed', 'bounced', 'complained'];
const number = new Intl.NumberFormat();
const kb = (bytes: number) => `${number.format(Math.ceil(bytes / 1024))} KB`;

export function Readers() {
  const [query, setQuery] = useState({ email: '', status: '' });
  const [search, setSearch] = useState({ email: '', status: '' });
  const [notice, setNotice] = useState<string>();
  const [counts, setCounts] = useState<Counts>();
  const [countsError, setCountsError] = useState<string>();

  const loadCounts = async () => {
    try {
      setCounts(await get<Counts>('/api/subscribers/counts'));
      setCountsError(undefined);
    } catch (err) {
      setCountsError((err as ApiError).message);
    }
  };
  useEffect(() => {
    void loadCounts();
  }, []);

  const params = (cursor?: string) => {
    const p = new URLSearchParams({ limit: '50' });
    if (search.email) p.set('email', search.email);
    if (search.status) p.set('status', search.status);
    if (cursor) p.set('cursor', cursor);
    return p;
  };

  const { items: readers, next, error, load } = usePagedList<Reader>((cursor) => `/api/subscribers?${params(cursor)}`, [search]);

  const exportParams = new URLSearchParams();
  if (search.email) exportParams.set('email', search.email);
  if (search.status) exportParams.set('status', search.status);

  return (
    <>
      <h1>Readers</h1>
      <section aria-labelledby="counts-heading">
        <h2 id="counts-heading">By status</h2>
        {countsError && <ErrorText>The counts could not be loaded: {countsError}</ErrorText>}
        {counts && (
          <ul class="status-counts" aria-label="Counts by status">
            <li>
              <strong>{number.format(counts.total)}</strong> in all
            </li>
            {STATUSES.map((s) => (
              <li key={s}>
                <strong>{number.format(counts[s] ?? 0)}</strong> {s}
              </li>
            ))}
          </ul>
        )}
      </section>
      <form
        class="search"
        onSubmit={(e) => {
          e.preventDefault();
          setSearch({ ...query });
        }}
      >
        <div class="field">
          <label for="reader-search">Search readers</label>
          <input id="reader-search" type="search" value={query.email} onInput={(e) => setQuery({ ...query, email: (e.target as HTMLInputElement).value })} />
        </div>
        <div class="field">
          <label for="reader-status">Status</label>
          <select id="reader-status" value={query.status} onChange={(e) => setQuery({ ...query, status: (e.target as HTMLSelectElement).value })}>
            <option value="">Any status</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </div>
        <button type="submit">Search</button>
        <a class="button-link" href={`/api/subscribers/export?${exportParams}`} download="readers.csv">
          Export CSV
        </a>
      </form>
      {notice && <OkText>{notice}</OkText>}
      {error && <ErrorText>The readers could not be loaded: {error}</ErrorText>}
      {readers?.length === 0 && <p>No reader matches.</p>}
      {readers && readers.length > 0 && (
        <ul class="reader-list" aria-label="Readers">
          {readers.map((r) => (
            <li key={r.id}>
              <div class="reader-head">
                <a href={`${BASE}/readers/${r.id}`}>
                  <strong>{r.email}</strong>
                </a>
                {r.name && <span> ({r.name})</span>}
                <span class="state">{r.status}</span>
              </div>
            </li>
          ))}
        </ul>
      )}
      {next && (
        <button type="button" class="secondary" onClick={() => load(next)}>
          More readers
        </button>
      )}
      <AddReader
        onAdded={(email) => {
          setNotice(`${email} added.`);
          void load();
          void loadCounts();
        }}
      />
      <ImportCsv
        onImported={() => {
          void load();
          void loadCounts();
        }}
      />
    </>
  );
}

function AddReader({ onAdded }: { onAdded: (email: string) => void }) {
  const [email, setEmail] = useState('');
  const [name, setName] = useState('');
  const [error, setError] = useState<string>();
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    try {
      await request('POST', '/api/subscribers', { body: { email, ...(name ? { name } : {}) } });
      setEmail('');
      setName('');
      onAdded(email);
    } catch (err) {
      setError((err as ApiError).message);
    }
  };
  return (
    <section class="panel" aria-labelledby="add-heading">
      <h2 id="add-heading">Add reader</h2>
      <form onSubmit={submit} noValidate>
        <label for="add-email">Email address</label>
        <input
          id="add-email"
          type="email"
          value={email}
          onInput={(e) => setEmail((e.target as HTMLInputElement).value)}
          aria-invalid={error ? 'true' : undefined}
          aria-describedby={error ? 'add-error' : undefined}
        />
        {error && <ErrorText id="add-error">{error}</ErrorText>}
        <label for="add-name">Name (optional)</label>
        <input id="add-name" type="text" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        <button type="submit">Add reader</button>
      </form>
    </section>
  );
}

function ImportCsv({ onImported }: { onImported: () => void }) {
  const [file, setFile] = useState<File>();
  const [busy, setBusy] = useState(false);
  const [progress, setProgress] = useState<{ sent: number; total: number }>();
  const [report, setReport] = useState<ImportReport>();
  const [error, setError] = useState<string>();
  const submit = async (e: Event) => {
    e.preventDefault();
    setReport(undefined);
    setError(undefined);
    if (!file) {
      setError('Choose a CSV file with an email column (and optionally name).');
      return;
    }
    setBusy(true);
    try {
      const blob = new Blob([file], { type: 'text/csv' });
      setProgress({ sent: 0, total: blob.size });
      setReport(await upload<ImportReport>('/api/subscribers/import', blob, (sent, total) => setProgress({ sent, total })));
      onImported();
    } catch (err) {
      setProgress(undefined);
      setError((err as ApiError).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="panel" aria-labelledby="import-heading">
      <h2 id="import-heading">Import CSV</h2>
      <form onSubmit={submit} noValidate>
        <label for="csv-file">CSV file</label>
        <p class="hint" id="csv-hint">
          A header line with an <code>email</code> column, and optionally <code>name</code>. Readers imported are active; unsubscribed or bounced addresses stay
          as they are.
        </p>
        <input
          id="csv-file"
          type="file"
          accept=".csv,text/csv"
          aria-describedby={error ? 'csv-hint csv-error' : 'csv-hint'}
          onChange={(e) => setFile((e.target as HTMLInputElement).files?.[0])}
        />
        {error && <ErrorText id="csv-error">{error}</ErrorText>}
        <button type="submit" disabled={busy}>
          Import
        </button>
        {progress && (
          <div class="import-progress">
            <label for="import-progress">{busy ? `Importing ${file?.name ?? 'the file'}` : 'Import'}</label>
            <progress id="import-progress" max={Math.max(progress.total, 1)} value={progress.sent} />
            <p role="status" class="meta">
              {!busy
                ? `All ${kb(progress.total)} sent and read.`
                : progress.sent < progress.total
                  ? `${kb(progress.sent)} of ${kb(progress.total)} sent (${Math.floor((100 * progress.sent) / Math.max(progress.total, 1))} %)…`
                  : `All ${kb(progress.total)} sent; the server is checking the rows…`}
            </p>
          </div>
        )}
      </form>
      {report && (
        <div role="status">
          <p class="ok">
            {number.format(report.accepted)} of {number.format(report.rows)} rows accepted, {number.format(report.rejected)} rejected.
          </p>
          {report.rejections.length > 0 && (
            <ul aria-label="Rejected lines">
              {report.rejections.map((r) => (
                <li key={r.line}>
                  Line {r.line} ({r.email || 'no address'}): {r.message}
                </li>
              ))}
              {report.rejectionsTruncated && <li>… and more; the first ones are listed.</li>}
            </ul>
          )}
        </div>
      )}
    </section>
  );
}
