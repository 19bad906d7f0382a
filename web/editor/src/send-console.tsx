// The send console: the send's counts polled every 2 s while it runs (no reload), its rate over
// the last minutes as a small chart, the ETA, Pause / Resume / Cancel send, the rate alert in
// words, and the failed and bounced messages with the relay's answers and Retry failed.
import { useEffect, useState } from 'preact/hooks';
import { type ApiError, get, request, type SendProgress } from './api';
import { ErrorText, OkText } from './messages';

type Send = SendProgress & {
  sending: number;
  rateAlert: { message: string; at: string; waived: boolean } | null;
  ratePerSecond: number;
  startedAt: string | null;
  finishedAt: string | null;
};
type Message = { id: number; email: string | null; status: string; attempts: number; smtpResponse: string | null; updatedAt: string };

const POLL_MS = 2000;
const CHART_POINTS = 90; // three minutes of polls
const number = new Intl.NumberFormat();

function duration(seconds: number): string {
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

export function SendConsole({ issueId, onChanged }: { issueId: number; onChanged: () => void }) {
  const [send, setSend] = useState<Send>();
  const [rates, setRates] = useState<number[]>([]);
  const [error, setError] = useState<string>();
  const [actionError, setActionError] = useState<string>();
  const [done, setDone] = useState<string>();
  const [messages, setMessages] = useState<{ failed: Message[]; bounced: Message[] }>();
  const [confirmCancel, setConfirmCancel] = useState(false);
  const [tick, setTick] = useState(0);

  const running = send === undefined || send.status === 'sending' || send.status === 'paused' || send.status === 'scheduled';

  // Polls on its own timer while the send runs; `tick` asks for an answer at once after an action.
  useEffect(() => {
    let stopped = false;
    const poll = async () => {
      try {
        const s = await get<Send>(`/api/issues/${issueId}/send`);
        if (stopped) return;
        setSend(s);
        setError(undefined);
        setRates((r) => [...r, s.ratePerSecond].slice(-CHART_POINTS));
        const [failed, bounced] = await Promise.all(
          ['failed', 'bounced'].map((status) => get<{ items: Message[] }>(`/api/issues/${issueId}/send/messages?status=${status}&limit=100`)),
        );
        if (!stopped) setMessages({ failed: failed!.items, bounced: bounced!.items });
      } catch (err) {
        // A lost connection is shown; the next poll recovers by itself when the server is back.
        if (!stopped) setError((err as ApiError).message);
      }
    };
    void poll();
    const timer = running ? setInterval(poll, POLL_MS) : undefined;
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [issueId, running, tick]);

  const act = async (what: 'pause' | 'resume' | 'cancel' | 'retry-failed', words: string) => {
    setActionError(undefined);
    setDone(undefined);
    try {
      const { body } = await request<{ queued?: number }>('POST', `/api/issues/${issueId}/send/${what}`);
      setDone(what === 'retry-failed' ? `${number.format(body.queued ?? 0)} failed message(s) queued again.` : words);
      setTick((n) => n + 1);
      onChanged();
    } catch (err) {
      setActionError((err as ApiError).message);
    }
  };

  if (!send) {
    return (
      <section class="send-console" aria-labelledby="console-heading">
        <h2 id="console-heading">Send</h2>
        <p role={error ? 'alert' : undefined} class={error ? 'error' : undefined}>
          {error ?? 'Loading the send…'}
        </p>
      </section>
    );
  }

  const counts: [string, number][] = [
    ['Queued', send.queued + send.sending],
    ['Submitted', send.submitted],
    ['Failed', send.failed],
    ['Bounced', send.bounced],
    ['Cancelled', send.cancelled],
  ];
  const handled = send.submitted + send.failed + send.bounced + send.cancelled;
  const statusWords: Record<string, string> = {
    scheduled: 'Scheduled',
    sending: 'Sending',
    paused: 'Paused',
    done: 'Finished',
    cancelled: 'Cancelled',
  };

  return (
    <section class="send-console" aria-labelledby="console-heading">
      <h2 id="console-heading">Send: {statusWords[send.status] ?? send.status}</h2>
      {error && <ErrorText>Connection lost: {error} The counts below are from before; they update again when the server answers.</ErrorText>}
      <progress class="send-progress" max={Math.max(send.total, handled, 1)} value={handled} aria-label="Send progress" />
      <p class="meta">
        {number.format(handled)} of {number.format(send.total)}
        {send.fanoutDone ? '' : '+'} handled
        {send.status === 'sending' && send.etaSeconds !== null && send.etaSeconds > 0 && <>, about {duration(send.etaSeconds)} left</>}
      </p>
      <dl class="counts">
        {counts.map(([name, n]) => (
          <div key={name}>
            <dt>{name}</dt>
            <dd>{number.format(n)}</dd>
          </div>
        ))}
        <div>
          <dt>Rate</dt>
          <dd>{send.ratePerSecond.toFixed(1)}/s</dd>
        </div>
      </dl>
      <RateChart rates={rates} />
      {send.rateAlert && (
        <p class={send.rateAlert.waived ? 'notice' : 'error'} role="alert">
          {send.rateAlert.waived
            ? `The rate alert (${send.rateAlert.message}) was waived: you resumed the send.`
            : `This send was paused by the rate alert: ${send.rateAlert.message}. Too many readers bounced or complained, which can harm your sending reputation. Check the bounces, then resume or cancel.`}
        </p>
      )}
      <div class="actions">
        {send.status === 'sending' && (
          <button type="button" onClick={() => act('pause', 'Paused: no new messages go out until you resume.')}>
            Pause
          </button>
        )}
        {send.status === 'paused' && (
          <button type="button" onClick={() => act('resume', 'Resumed.')}>
            Resume
          </button>
        )}
        {(send.status === 'sending' || send.status === 'paused') && !confirmCancel && (
          <button type="button" class="secondary" onClick={() => setConfirmCancel(true)}>
            Cancel send
          </button>
        )}
        {confirmCancel && (
          // biome-ignore lint/a11y/useSemanticElements: a small inline confirmation, not a form fieldset.
          <div class="inline-confirm" role="group" aria-label="Cancel the send?">
            <span>Readers not mailed yet will not get this issue. Cancel the send?</span>
            <button
              type="button"
              class="danger"
              onClick={async () => {
                setConfirmCancel(false);
                await act('cancel', 'Cancelled: what was still queued will not be sent.');
              }}
            >
              Yes, cancel the send
            </button>
            <button type="button" class="secondary" onClick={() => setConfirmCancel(false)}>
              Keep sending
            </button>
          </div>
        )}
        {send.failed > 0 && send.status !== 'cancelled' && send.status !== 'scheduled' && (
          <button type="button" onClick={() => act('retry-failed', '')}>
            Retry failed
          </button>
        )}
      </div>
      {actionError && <ErrorText>{actionError}</ErrorText>}
      {done && <OkText>{done}</OkText>}
      {messages && (messages.failed.length > 0 || messages.bounced.length > 0) && (
        <>
          <h3>Failed and bounced messages</h3>
          <ul class="messages" aria-label="Failed and bounced messages">
            {[...messages.failed, ...messages.bounced].map((m) => (
              <li key={m.id}>
                <strong>{m.email ?? 'an erased reader'}</strong> {m.status}: {m.smtpResponse ?? 'no answer recorded'}
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}

/** Submissions per second over the last polls, as a line; its numbers are in the Rate count above. */
function RateChart({ rates }: { rates: number[] }) {
  if (rates.length < 2) return null;
  const max = Math.max(...rates, 1);
  const w = 300;
  const h = 48;
  const points = rates.map((r, i) => `${((i / (CHART_POINTS - 1)) * w).toFixed(1)},${(h - (r / max) * (h - 4) - 2).toFixed(1)}`).join(' ');
  return (
    <svg class="rate-chart" viewBox={`0 0 ${w} ${h}`} role="img" aria-label={`Rate over the last minutes, up to ${max.toFixed(1)} messages a second`}>
      <polyline points={points} fill="none" stroke="currentColor" stroke-width="2" />
    </svg>
  );
}
