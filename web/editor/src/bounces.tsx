// Bounces and complaints, newest first, unmatched ones too, filtered by type; keyset-paged.
import { useState } from 'preact/hooks';
import { usePagedList } from './paged-list';
import { ErrorText } from './messages';

export type Bounce = {
  id: number;
  type: string;
  source: string;
  email: string | null;
  recipient: string | null;
  status: string | null;
  diagnostic: string | null;
  feedbackType: string | null;
  reportId: number | null;
  occurredAt: string;
};

const TYPES: Record<string, string> = { hard: 'Hard bounces', soft: 'Soft bounces', complaint: 'Complaints', other: 'Other' };
const when = (iso: string) => new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });

export function Bounces() {
  const [type, setType] = useState('');
  const { items, next, error, load } = usePagedList<Bounce>(
    (cursor) => {
      const p = new URLSearchParams({ limit: '50' });
      if (type) p.set('type', type);
      if (cursor) p.set('cursor', cursor);
      return `/api/bounces?${p}`;
    },
    [type],
  );

  return (
    <>
      <h1>Bounces</h1>
      <div class="field narrow-field">
        <label for="bounce-type">Show</label>
        <select id="bounce-type" value={type} onChange={(e) => setType((e.target as HTMLSelectElement).value)}>
          <option value="">Bounces and complaints</option>
          {Object.entries(TYPES).map(([value, words]) => (
            <option key={value} value={value}>
              {words}
            </option>
          ))}
        </select>
      </div>
      {error && <ErrorText>The bounces could not be loaded: {error}</ErrorText>}
      {items?.length === 0 && <p>No bounce or complaint recorded.</p>}
      {items && items.length > 0 && <BounceList items={items} label="Bounces and complaints" />}
      {next && (
        <button type="button" class="secondary" onClick={() => load(next)}>
          Older bounces
        </button>
      )}
    </>
  );
}

/** Bounces and complaints as a list: the address, the kind, when, from where, the relay's words. */
export function BounceList({ items, label }: { items: Bounce[]; label: string }) {
  return (
    <ul class="reader-list" aria-label={label}>
      {items.map((b) => (
        <li key={b.id}>
          <div class="reader-head">
            <strong>{b.email ?? b.recipient ?? 'an unknown address'}</strong>
            <span class="state">{b.type === 'complaint' ? 'complaint' : `${b.type} bounce`}</span>
            {b.email === null && <span class="meta">matched no reader</span>}
          </div>
          <p class="meta">
            {when(b.occurredAt)} · {b.source}
            {b.status ? ` · ${b.status}` : ''}
            {b.feedbackType ? ` · ${b.feedbackType}` : ''}
          </p>
          {b.diagnostic && <p>{b.diagnostic}</p>}
          {b.reportId !== null && <a href={`/api/bounces/reports/${b.reportId}`}>Download the report</a>}
        </li>
      ))}
    </ul>
  );
}
