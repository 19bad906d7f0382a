// Test and send, under the writer: test copies, send now or at a time (each confirmed in a
// dialog that states the audience the API counted, sent back as expectAudience), reschedule,
// unschedule, and unpublish. Every answer from the API is shown next to what caused it.
import { useState } from 'preact/hooks';
import { type ApiError, get, type IssueDetail, request } from './api';
import { ConfirmDialog } from './dialog';
import { Field } from './field';
import { ErrorText, OkText } from './messages';

type TestResult = { to: string; status: 'submitted' | 'rejected'; response: string };
type Confirming = { title: string; body: string; confirm: () => Promise<void> };

const number = new Intl.NumberFormat();
const pad = (n: number) => String(n).padStart(2, '0');
/** A date-time field's value (local time, no zone) for a Date. */
const localValue = (d: Date) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
const utcWords = (d: Date) => `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;

export function SendPanel({ issue, unsaved, onChanged }: { issue: IssueDetail; unsaved: boolean; onChanged: () => void }) {
  const [addresses, setAddresses] = useState('');
  const [testResults, setTestResults] = useState<TestResult[]>();
  const [testError, setTestError] = useState<string>();
  const [testing, setTesting] = useState(false);
  const [sendAt, setSendAt] = useState(() => localValue(new Date(issue.scheduledAt ?? Date.now() + 24 * 3600_000)));
  const [sendAtError, setSendAtError] = useState<string>();
  const [sendError, setSendError] = useState<string>();
  const [done, setDone] = useState<string>();
  const [confirming, setConfirming] = useState<Confirming>();

  const canSend = issue.state === 'draft' || issue.state === 'published';
  const scheduled = issue.state === 'scheduled';
  const at = new Date(sendAt);
  const atValid = sendAt !== '' && !Number.isNaN(at.getTime());

  const sendTest = async (event: Event) => {
    event.preventDefault();
    const to = addresses.split(/[\s,;]+/).filter(Boolean);
    setTestResults(undefined);
    if (to.length === 0) {
      setTestError('Enter at least one address to send the test copy to.');
      return;
    }
    setTesting(true);
    setTestError(undefined);
    try {
      const { body } = await request<{ results: TestResult[] }>('POST', `/api/issues/${issue.id}/test`, { body: { to } });
      setTestResults(body.results);
    } catch (err) {
      setTestError((err as ApiError).message);
    } finally {
      setTesting(false);
    }
  };

  /** Counts the audience now, and asks the editor to confirm that number. */
  const confirmSend = async (scheduledAt?: Date) => {
    setSendError(undefined);
    setSendAtError(undefined);
    setDone(undefined);
    if (unsaved) {
      setSendError('The issue has unsaved changes: wait for “Saved” (or save the correction) before sending.');
      return;
    }
    if (scheduledAt && scheduledAt.getTime() <= Date.now()) {
      setSendAtError(`That time is in the past (${utcWords(scheduledAt)}); choose a time in the future.`);
      return;
    }
    let audience: number;
    try {
      audience = (await get<{ audience: number }>(`/api/issues/${issue.id}/audience`)).audience;
    } catch (err) {
      setSendError((err as ApiError).message);
      return;
    }
    const readers = `${number.format(audience)} reader${audience === 1 ? '' : 's'}`;
    setConfirming({
      title: `Send to ${readers}?`,
      body: scheduledAt
        ? `“${issue.subject}” will be sent on ${scheduledAt.toLocaleString()} (${utcWords(scheduledAt)}) to the readers active then.`
        : `“${issue.subject}” will be sent now. It cannot be unsent.`,
      confirm: async () => {
        try {
          await request('POST', `/api/issues/${issue.id}/send`, {
            body: { expectAudience: audience, ...(scheduledAt ? { scheduledAt: scheduledAt.toISOString() } : {}) },
          });
          setDone(scheduledAt ? `Scheduled for ${scheduledAt.toLocaleString()} (${utcWords(scheduledAt)}).` : 'Sending has started.');
          onChanged();
        } catch (err) {
          const e = err as ApiError;
          if (e.code === 'audience_changed') setSendError(`${e.message}. Press the button again to confirm the new number.`);
          else if (e.code === 'scheduled_in_past') setSendAtError(e.message);
          else setSendError(e.message);
        }
      },
    });
  };

  const reschedule = async () => {
    setSendAtError(undefined);
    setDone(undefined);
    if (at.getTime() <= Date.now()) {
      setSendAtError(`That time is in the past (${utcWords(at)}); choose a time in the future.`);
      return;
    }
    try {
      await request('PATCH', `/api/issues/${issue.id}/send`, { body: { scheduledAt: at.toISOString() } });
      setDone(`Rescheduled for ${at.toLocaleString()} (${utcWords(at)}).`);
      onChanged();
    } catch (err) {
      const e = err as ApiError;
      if (e.code === 'scheduled_in_past') setSendAtError(e.message);
      else setSendError(e.message);
    }
  };

  const unschedule = async () => {
    setDone(undefined);
    try {
      await request('DELETE', `/api/issues/${issue.id}/send`);
      setDone('The scheduled send is taken back: nothing was mailed, and the issue can be edited again.');
      onChanged();
    } catch (err) {
      setSendError((err as ApiError).message);
    }
  };

  const unpublish = () =>
    setConfirming({
      title: 'Unpublish this issue?',
      body: `“${issue.subject}” leaves the archive and the feed; its web version answers “gone”. ${issue.state === 'sent' ? 'Mail already sent does not change.' : 'It becomes a draft again.'}`,
      confirm: async () => {
        try {
          await request('POST', `/api/issues/${issue.id}/unpublish`);
          setDone('Unpublished.');
          onChanged();
        } catch (err) {
          setSendError((err as ApiError).message);
        }
      },
    });

  return (
    <section class="send-panel" aria-labelledby="send-heading">
      <h2 id="send-heading">Test and send</h2>
      <form onSubmit={sendTest} noValidate>
        <Field
          id="test-addresses"
          label="Test addresses"
          hint="Up to 10, separated by commas or spaces. The copy is marked [Test] and is not part of any send."
          type="text"
          inputMode="email"
          autoComplete="email"
          value={addresses}
          onValue={setAddresses}
          error={testError}
        />
        <button type="submit" disabled={testing}>
          Send test
        </button>
      </form>
      {testResults && (
        <ul class="test-results" aria-label="Test copies">
          {testResults.map((r) => (
            <li key={r.to} class={r.status === 'submitted' ? '' : 'error'}>
              {r.to}: {r.status === 'submitted' ? 'accepted by the relay' : 'refused by the relay'} ({r.response})
            </li>
          ))}
        </ul>
      )}

      {(canSend || scheduled) && (
        <div class="field">
          <Field
            id="send-at"
            label="Send at"
            hint={`In your local time${atValid ? ` (that is ${utcWords(at)})` : ''}.`}
            type="datetime-local"
            value={sendAt}
            onValue={setSendAt}
            error={sendAtError}
          />
        </div>
      )}
      <div class="actions">
        {canSend && (
          <>
            <button type="button" onClick={() => confirmSend()}>
              Send now
            </button>
            <button type="button" class="secondary" disabled={!atValid} onClick={() => confirmSend(at)}>
              Schedule
            </button>
          </>
        )}
        {scheduled && (
          <>
            <button type="button" disabled={!atValid} onClick={reschedule}>
              Reschedule
            </button>
            <button type="button" class="secondary" onClick={unschedule}>
              Unschedule
            </button>
          </>
        )}
        {issue.inArchive && (issue.state === 'published' || issue.state === 'sent' || issue.state === 'cancelled') && (
          <button type="button" class="secondary" onClick={unpublish}>
            Unpublish
          </button>
        )}
      </div>
      {scheduled && issue.scheduledAt && (
        <p class="meta">
          Scheduled for {new Date(issue.scheduledAt).toLocaleString()} ({utcWords(new Date(issue.scheduledAt))}).
        </p>
      )}
      {sendError && <ErrorText>{sendError}</ErrorText>}
      {done && <OkText>{done}</OkText>}
      {confirming && (
        <ConfirmDialog title={confirming.title} onClose={() => setConfirming(undefined)} onConfirm={confirming.confirm}>
          <p>{confirming.body}</p>
        </ConfirmDialog>
      )}
    </section>
  );
}
