// A reader's page: their status and its dates, their consent evidence, their bounces and
// complaints, and Erase (behind a confirmation dialog).
import { Fragment } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { type ApiError, get, request } from './api';
import { type Bounce, BounceList } from './bounces';
import { ConfirmDialog } from './dialog';
import { BASE } from './router';
import { ErrorText, OkText } from './messages';

type Reader = {
  id: number;
  email: string;
  name: string | null;
  status: string;
  createdAt: string;
  confirmedAt: string | null;
  unsubscribedAt: string | null;
  bouncedAt: string | null;
  complainedAt: string | null;
  consent: { at: string; source: string; ip: string | null; userAgent: string | null };
};

const when = (iso: string) => new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });

export function ReaderPage({ id }: { id: number }) {
  const [reader, setReader] = useState<Reader>();
  const [bounces, setBounces] = useState<Bounce[]>();
  const [error, setError] = useState<string>();
  const [bounceError, setBounceError] = useState<string>();
  const [confirming, setConfirming] = useState(false);
  const [erased, setErased] = useState<string>();

  useEffect(() => {
    get<Reader>(`/api/subscribers/${id}`).then(setReader, (err: ApiError) => setError(err.message));
    get<{ items: Bounce[] }>(`/api/bounces?subscriber=${id}&limit=100`).then(
      (page) => setBounces(page.items),
      (err: ApiError) => setBounceError(err.message),
    );
  }, [id]);

  if (erased) {
    return (
      <>
        <h1>Reader erased</h1>
        <OkText>{erased} was erased: their data is gone, and the address can never be mailed again.</OkText>
        <a href={`${BASE}/readers`}>Back to the readers</a>
      </>
    );
  }
  if (error) {
    return (
      <>
        <h1>Reader</h1>
        <ErrorText>This reader could not be loaded: {error}</ErrorText>
        <a href={`${BASE}/readers`}>Back to the readers</a>
      </>
    );
  }
  if (!reader) return <p role="status">Loading…</p>;

  const dates: [string, string | null][] = [
    ['Added', reader.createdAt],
    ['Confirmed', reader.confirmedAt],
    ['Unsubscribed', reader.unsubscribedAt],
    ['Bounced', reader.bouncedAt],
    ['Complained', reader.complainedAt],
  ];
  return (
    <>
      <p>
        <a href={`${BASE}/readers`}>Back to the readers</a>
      </p>
      <h1>{reader.email}</h1>
      <p>
        {reader.name && <>{reader.name} · </>}
        <span class="state">{reader.status}</span>
      </p>
      <dl class="evidence">
        {dates
          .filter(([, at]) => at !== null)
          .map(([words, at]) => (
            <Fragment key={words}>
              <dt>{words}</dt>
              <dd>{when(at!)}</dd>
            </Fragment>
          ))}
      </dl>
      <section aria-labelledby="consent-heading">
        <h2 id="consent-heading">Consent evidence</h2>
        <dl class="evidence">
          <dt>Agreed</dt>
          <dd>{when(reader.consent.at)}</dd>
          <dt>How</dt>
          <dd>{reader.consent.source}</dd>
          <dt>From address</dt>
          <dd>{reader.consent.ip ?? 'not recorded'}</dd>
          <dt>Browser</dt>
          <dd>{reader.consent.userAgent ?? 'not recorded'}</dd>
        </dl>
      </section>
      <section aria-labelledby="reader-bounces-heading">
        <h2 id="reader-bounces-heading">Bounces and complaints</h2>
        {bounceError && <ErrorText>Their bounces could not be loaded: {bounceError}</ErrorText>}
        {bounces?.length === 0 && <p>No bounce or complaint recorded for this reader.</p>}
        {bounces && bounces.length > 0 && <BounceList items={bounces} label={`Bounces and complaints of ${reader.email}`} />}
      </section>
      <section aria-labelledby="erase-heading">
        <h2 id="erase-heading">Erase</h2>
        <p>Erasing deletes this reader's data for good; the address is never mailed again.</p>
        <button type="button" class="secondary" onClick={() => setConfirming(true)}>
          Erase {reader.email}
        </button>
      </section>
      {confirming && (
        <ConfirmDialog
          title={`Erase ${reader.email}?`}
          confirmLabel="Erase"
          onClose={() => setConfirming(false)}
          onConfirm={async () => {
            try {
              await request('DELETE', `/api/subscribers/${reader.id}`);
              setErased(reader.email);
            } catch (err) {
              setError((err as ApiError).message);
            }
          }}
        >
          <p>Their data is deleted for good; only a one-way digest of the address stays, so that it is never mailed again.</p>
        </ConfirmDialog>
      )}
    </>
  );
}
