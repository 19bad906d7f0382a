import { useEffect, useState } from 'preact/hooks';
import { get, type Issue, type SendProgress } from './api';
import { usePagedList } from './paged-list';
import { navigate } from './router';
import { ErrorText } from './messages';

const IN_PROGRESS = new Set(['sending', 'paused']);
const STATE_WORDS: Record<string, string> = {
  draft: 'Draft',
  published: 'Published',
  scheduled: 'Scheduled',
  sending: 'Sending',
  paused: 'Paused',
  sent: 'Sent',
  cancelled: 'Cancelled',
};

const number = new Intl.NumberFormat();
const when = (iso: string) => new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });

export function Issues() {
  const {
    items: issues,
    next,
    error,
    load,
  } = usePagedList<Issue>((cursor) => `/api/issues?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, []);
  const [progress, setProgress] = useState<Record<number, SendProgress>>({});

  // A lost connection: tried again every 5 s, so the list comes back by itself with the server.
  useEffect(() => {
    if (!error) return;
    const timer = setTimeout(() => void load(), 5000);
    return () => clearTimeout(timer);
  }, [error]);

  // Sends in progress: their counts, again every few seconds while any is under way.
  const running = (issues ?? []).filter((i) => IN_PROGRESS.has(i.state)).map((i) => i.id);
  const runningKey = running.join(',');
  useEffect(() => {
    if (!running.length) return;
    let stopped = false;
    const poll = async () => {
      const answers = await Promise.all(
        running.map((id) =>
          get<SendProgress>(`/api/issues/${id}/send`).then(
            (p) => [id, p] as const,
            () => undefined,
          ),
        ),
      );
      if (stopped) return;
      setProgress((before) => ({ ...before, ...Object.fromEntries(answers.filter((a) => a !== undefined)) }));
      const finished = answers.some((a) => a && !IN_PROGRESS.has(a[1].status));
      if (finished) void load();
    };
    void poll();
    const timer = setInterval(poll, 3000);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [runningKey]);

  return (
    <>
      <div class="heading-row">
        <h1>Issues</h1>
        <button type="button" onClick={() => navigate('/editor/issues/new')}>
          New issue
        </button>
      </div>
      {error && (
        <ErrorText>
          The issues could not be loaded: {error}{' '}
          <button type="button" class="secondary" onClick={() => load()}>
            Try again
          </button>
        </ErrorText>
      )}
      {issues === undefined && !error && <p>Loading…</p>}
      {issues?.length === 0 && <p>No issues yet. Press “New issue” to write the first one.</p>}
      {issues && issues.length > 0 && (
        <ul class="issue-list">
          {issues.map((issue) => {
            const p = progress[issue.id];
            return (
              <li key={issue.id}>
                <a href={`/editor/issues/${issue.id}`} class="subject">
                  {issue.subject}
                </a>
                <span class={`state state-${issue.state}`}>{STATE_WORDS[issue.state] ?? issue.state}</span>
                <span class="meta">
                  {issue.state === 'scheduled' && issue.scheduledAt && <>sends {when(issue.scheduledAt)} · </>}
                  {IN_PROGRESS.has(issue.state) && p && <SendMeter progress={p} />}
                  {!IN_PROGRESS.has(issue.state) && <>changed {when(issue.updatedAt)}</>}
                </span>
              </li>
            );
          })}
        </ul>
      )}
      {next && (
        <button type="button" class="secondary" onClick={() => load(next)}>
          Older issues
        </button>
      )}
    </>
  );
}

function SendMeter({ progress: p }: { progress: SendProgress }) {
  const done = p.submitted + p.failed + p.bounced + p.cancelled;
  const total = Math.max(p.total, done);
  return (
    <span class="send-meter">
      <progress max={total || 1} value={done} aria-label="Send progress" /> {number.format(p.submitted)} of {number.format(p.total)}
      {p.fanoutDone ? '' : '+'} submitted
      {p.failed > 0 && <>, {number.format(p.failed)} failed</>}
      {p.bounced > 0 && <>, {number.format(p.bounced)} bounced</>}
    </span>
  );
}
