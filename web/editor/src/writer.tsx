// The writer: Subject, Preheader and Markdown beside the preview a reader gets. A draft saves
// itself a moment after the editor stops typing, based on the revision it was loaded at
// (If-Match), so another tab's save is never overwritten: that is a 409 edit_conflict, said
// plainly. Until a change is saved it is kept in this browser (localStorage), across reloads.
import { useEffect, useRef, useState } from 'preact/hooks';
import { type ApiError, get, type IssueDetail, type Media, OFFLINE, type Revision, request } from './api';
import { navigate } from './router';
import { SendConsole } from './send-console';
import { SendPanel } from './send-panel';
import { ErrorText } from './messages';

type Fields = { subject: string; preheader: string; markdown: string };
type Kept = Fields & { base: number | null; keptAt: string };
type SaveState =
  | { kind: 'loading' }
  | { kind: 'saved' }
  | { kind: 'unsaved' }
  | { kind: 'saving' }
  | { kind: 'conflict' }
  | { kind: 'offline' }
  | { kind: 'refused'; message: string; field?: keyof Fields }
  | { kind: 'read-only' };

const AUTOSAVE_MS = 1200;
const RETRY_MS = 5000;
const EDITABLE = new Set(['draft', 'published', 'sent', 'cancelled']);
const GMAIL_CLIP_BYTES = 102 * 1024;

const storageKey = (id: number | 'new') => `broadside.editor.draft.${id}`;

function readKept(id: number | 'new'): Kept | undefined {
  try {
    const raw = localStorage.getItem(storageKey(id));
    return raw ? (JSON.parse(raw) as Kept) : undefined;
  } catch {
    return undefined;
  }
}

function keep(id: number | 'new', fields: Fields, base: number | null): void {
  try {
    localStorage.setItem(storageKey(id), JSON.stringify({ ...fields, base, keptAt: new Date().toISOString() }));
  } catch {
    // Storage full or refused: the save to the server is what counts.
  }
}

const forget = (id: number | 'new') => {
  try {
    localStorage.removeItem(storageKey(id));
  } catch {
    // nothing kept
  }
};

const same = (a: Fields, b: Fields) => a.subject === b.subject && a.preheader === b.preheader && a.markdown === b.markdown;

export function Writer({ id }: { id: number | 'new' }) {
  const [issue, setIssue] = useState<IssueDetail>();
  const [fields, setFields] = useState<Fields>({ subject: '', preheader: '', markdown: '' });
  const [save, setSave] = useState<SaveState>({ kind: 'loading' });
  const [loadError, setLoadError] = useState<string>();
  const [restored, setRestored] = useState(false);
  const [width, setWidth] = useState<'desktop' | 'phone'>('desktop');
  const [format, setFormat] = useState<'html' | 'text'>('html');
  const [sender, setSender] = useState<{ name: string | null; address: string }>();
  // The From every copy carries, for the inbox line; the line goes without it if it cannot be had.
  useEffect(() => {
    get<{ from: { name: string | null; address: string } }>('/api/newsletter').then(
      (n) => setSender(n.from),
      () => undefined,
    );
  }, []);
  // What the server has: the fields as last saved, and the revision they are.
  const saved = useRef<{ fields: Fields; revision: number | null }>({ fields: { subject: '', preheader: '', markdown: '' }, revision: null });
  const timer = useRef<ReturnType<typeof setTimeout>>();
  const inFlight = useRef(false);
  const latest = useRef(fields);
  latest.current = fields;

  const isDraft = issue === undefined || issue.state === 'draft';
  const editable = issue === undefined || EDITABLE.has(issue.state);

  useEffect(() => {
    // A new issue, once saved, is renamed to its id: it is the same one already shown.
    if (id !== 'new' && issue?.id === id) return;
    if (id === 'new') {
      const kept = readKept('new');
      if (kept) {
        setFields({ subject: kept.subject, preheader: kept.preheader, markdown: kept.markdown });
        setRestored(true);
        setSave({ kind: 'unsaved' });
      } else setSave({ kind: 'unsaved' });
      return;
    }
    request<IssueDetail>('GET', `/api/issues/${id}`)
      .then(({ body }) => {
        setIssue(body);
        const server = { subject: body.subject, preheader: body.preheader, markdown: body.markdown };
        saved.current = { fields: server, revision: body.revision };
        const kept = readKept(id);
        if (kept && !same(kept, server) && EDITABLE.has(body.state)) {
          // Typed here and never saved: shown again, still based on the revision it was typed on.
          saved.current.revision = kept.base ?? body.revision;
          setFields({ subject: kept.subject, preheader: kept.preheader, markdown: kept.markdown });
          setRestored(true);
          setSave({ kind: 'unsaved' });
        } else {
          if (kept) forget(id);
          setFields(server);
          setSave(EDITABLE.has(body.state) ? { kind: 'saved' } : { kind: 'read-only' });
        }
      })
      .catch((err: ApiError) => setLoadError(err.status === 404 ? 'There is no such issue: it may have been deleted.' : err.message));
  }, [id]);

  const doSave = async () => {
    if (inFlight.current) return;
    const sending = latest.current;
    if (!sending.subject.trim() || !sending.markdown.trim()) {
      setSave({
        kind: 'refused',
        field: !sending.subject.trim() ? 'subject' : 'markdown',
        message: !sending.subject.trim() ? 'Write a subject to save the draft.' : 'Write some Markdown to save the draft.',
      });
      return;
    }
    inFlight.current = true;
    setSave({ kind: 'saving' });
    try {
      let answer: IssueDetail;
      if (id === 'new' && saved.current.revision === null) {
        answer = (await request<IssueDetail>('POST', '/api/issues', { body: sending })).body;
        forget('new');
        navigate(`/editor/issues/${answer.id}`, { replace: true });
      } else {
        const target = id === 'new' ? issue!.id : id;
        answer = (await request<IssueDetail>('PATCH', `/api/issues/${target}`, { body: sending, headers: { 'if-match': `"${saved.current.revision}"` } })).body;
      }
      saved.current = { fields: sending, revision: answer.revision };
      setIssue(answer);
      if (same(latest.current, sending)) {
        forget(id);
        setSave({ kind: 'saved' });
      } else {
        keep(answer.id, latest.current, answer.revision);
        setSave({ kind: 'unsaved' });
      }
    } catch (err) {
      const e = err as ApiError;
      if (e.code === 'edit_conflict') setSave({ kind: 'conflict' });
      else if (e.code === OFFLINE || e.status === 503) setSave({ kind: 'offline' });
      else {
        const field = (e.details as { field?: string } | undefined)?.field;
        setSave({ kind: 'refused', message: e.message, field: field === 'subject' || field === 'preheader' || field === 'markdown' ? field : undefined });
      }
    } finally {
      inFlight.current = false;
    }
  };

  // Drafts save themselves; a correction to a published issue is saved by the editor's press.
  useEffect(() => {
    clearTimeout(timer.current);
    if (save.kind === 'unsaved' && isDraft) timer.current = setTimeout(doSave, AUTOSAVE_MS);
    if (save.kind === 'offline') timer.current = setTimeout(doSave, RETRY_MS);
    return () => clearTimeout(timer.current);
  }, [fields, save.kind, isDraft]);

  const update = (next: Fields) => {
    latest.current = next;
    setFields(next);
    keep(id === 'new' && issue ? issue.id : id, next, saved.current.revision);
    if (save.kind !== 'conflict') setSave({ kind: 'unsaved' });
  };

  const change = (name: keyof Fields) => (event: Event) => {
    update({ ...latest.current, [name]: (event.target as HTMLInputElement | HTMLTextAreaElement).value });
  };

  // Images pasted, dropped or chosen: uploaded (POST /api/media) and inserted as Markdown where
  // the cursor is; a placeholder stands there meanwhile.
  const markdownField = useRef<HTMLTextAreaElement>(null);
  const [imageMessage, setImageMessage] = useState<{ error: boolean; text: string }>();
  const insertImages = (files: File[]): boolean => {
    const images = files.filter((f) => f.type.startsWith('image/'));
    if (images.length === 0) return false;
    void (async () => {
      for (const file of images) {
        const alt = file.name.replace(/\.[^.]*$/, '').replace(/[[\]\\]/g, '') || 'image';
        const marker = `![Uploading ${alt}…]()`;
        const el = markdownField.current;
        const md = latest.current.markdown;
        const at = el ? el.selectionEnd : md.length;
        update({ ...latest.current, markdown: `${md.slice(0, at)}${marker}${md.slice(at)}` });
        setImageMessage({ error: false, text: `Uploading ${file.name}…` });
        try {
          const { body } = await request<Media>('POST', '/api/media', { raw: file });
          update({ ...latest.current, markdown: latest.current.markdown.replace(marker, `![${alt}](${body.url})`) });
          setImageMessage({ error: false, text: `${file.name} uploaded and inserted.` });
        } catch (err) {
          update({ ...latest.current, markdown: latest.current.markdown.replace(marker, '') });
          setImageMessage({ error: true, text: `${file.name} could not be uploaded: ${(err as ApiError).message}` });
        }
      }
    })();
    return true;
  };

  const restore = async (number: number) => {
    const target = issue?.id;
    if (!target) return;
    const r = await get<Revision & { markdown: string }>(`/api/issues/${target}/revisions/${number}`);
    update({ subject: r.subject, preheader: r.preheader, markdown: r.markdown });
    setRestoredRevision(number);
  };
  const [restoredRevision, setRestoredRevision] = useState<number>();

  /** After a send, unschedule or unpublish: the issue's new state decides what may be edited. */
  const reloadIssue = async () => {
    if (!issue) return;
    try {
      const { body } = await request<IssueDetail>('GET', `/api/issues/${issue.id}`);
      setIssue(body);
      if (!EDITABLE.has(body.state)) setSave({ kind: 'read-only' });
      else if (save.kind === 'read-only' || save.kind === 'saved') {
        const server = { subject: body.subject, preheader: body.preheader, markdown: body.markdown };
        saved.current = { fields: server, revision: body.revision };
        latest.current = server;
        setFields(server);
        setSave({ kind: 'saved' });
      }
    } catch {
      // The panel already said what went wrong; the next action reloads again.
    }
  };

  if (loadError) {
    return (
      <>
        <h1>Write</h1>
        <ErrorText>{loadError}</ErrorText>
        <p>
          <a href="/editor/issues">Back to the issues</a>
        </p>
      </>
    );
  }

  // Nothing to type into until the issue is here: what was typed would be replaced by it.
  if (id !== 'new' && !issue) {
    return (
      <>
        <h1>Write</h1>
        <p role="status">Loading the issue…</p>
      </>
    );
  }

  const fieldError = (name: keyof Fields) => (save.kind === 'refused' && save.field === name ? save.message : undefined);
  const previewId = issue?.id;
  const previewSrc = previewId ? `/api/issues/${previewId}/preview?${format === 'text' ? 'format=text&' : ''}r=${issue!.revision}` : undefined;

  return (
    <>
      <div class="heading-row">
        <h1>{id === 'new' && !issue ? 'New issue' : 'Write'}</h1>
        <SaveStatus state={save} draft={isDraft} onSave={doSave} />
      </div>
      {restored && <p class="notice">Changes this browser kept from before (never saved) are shown again.</p>}
      {issue && !isDraft && editable && (
        <p class="notice">
          This issue is {issue.state}. Saving a change corrects its web version, the archive and the feed; mail already sent does not change.
        </p>
      )}
      {issue && !editable && <p class="notice">This issue is {issue.state}: it cannot be changed while its send is scheduled or under way.</p>}
      <div class="writer">
        <form class="fields" onSubmit={(e) => e.preventDefault()}>
          <Field label="Subject" name="subject" error={fieldError('subject')}>
            {(props) => <input {...props} type="text" value={fields.subject} onInput={change('subject')} readOnly={!editable} maxLength={300} />}
          </Field>
          <Field label="Preheader" name="preheader" hint="The line an inbox shows after the subject." error={fieldError('preheader')}>
            {(props) => <input {...props} type="text" value={fields.preheader} onInput={change('preheader')} readOnly={!editable} maxLength={300} />}
          </Field>
          <Field label="Markdown" name="markdown" hint="Paste or drop an image here to upload it and insert it." error={fieldError('markdown')}>
            {(props) => (
              <textarea
                {...props}
                ref={markdownField}
                value={fields.markdown}
                onInput={change('markdown')}
                readOnly={!editable}
                rows={24}
                spellcheck
                onPaste={(e) => {
                  if (editable && insertImages([...(e.clipboardData?.files ?? [])])) e.preventDefault();
                }}
                onDragOver={(e) => {
                  if (editable && e.dataTransfer?.types.includes('Files')) e.preventDefault();
                }}
                onDrop={(e) => {
                  if (editable && insertImages([...(e.dataTransfer?.files ?? [])])) e.preventDefault();
                }}
              />
            )}
          </Field>
          {editable && (
            <div class="field">
              <label for="insert-image">Insert image</label>
              <input
                id="insert-image"
                type="file"
                accept="image/png,image/jpeg,image/gif,image/webp"
                multiple
                onChange={(e) => {
                  const input = e.target as HTMLInputElement;
                  insertImages([...(input.files ?? [])]);
                  input.value = '';
                }}
              />
            </div>
          )}
          {imageMessage && (
            <p class={imageMessage.error ? 'error' : 'meta'} role={imageMessage.error ? 'alert' : 'status'}>
              {imageMessage.text}
            </p>
          )}
          {restoredRevision && <p class="notice">Revision {restoredRevision} is back in the fields; saving keeps it as a new revision.</p>}
          {issue && <Revisions issueId={issue.id} latest={issue.revision} editable={editable} onRestore={restore} />}
        </form>
        <section class="preview" aria-labelledby="preview-heading">
          <div class="preview-bar">
            <h2 id="preview-heading">Preview</h2>
            <Toggle label="Width" options={{ desktop: 'Desktop', phone: 'Phone' }} value={width} onChange={setWidth} />
            <Toggle label="Format" options={{ html: 'HTML', text: 'Text' }} value={format} onChange={setFormat} />
          </div>
          {issue && (
            <p class="meta">
              {(issue.htmlBytes / 1024).toFixed(1)} KB of HTML; Gmail clips a message over 102 KB
              {issue.htmlBytes > GMAIL_CLIP_BYTES ? ': this one will be clipped.' : '.'}
            </p>
          )}
          <p class="inbox-line">
            <span class="visually-hidden">In an inbox: </span>
            {sender && (
              <>
                <span class="sender">{sender.name ?? sender.address}</span>
                {sender.name && <span class="meta"> &lt;{sender.address}&gt;</span>}
                <br />
              </>
            )}
            <strong>{fields.subject || 'No subject yet'}</strong>
            {fields.preheader && <span class="meta"> — {fields.preheader}</span>}
          </p>
          {issue && issue.sections.length > 0 && (
            <section class="outline" aria-labelledby="outline-heading">
              <h3 id="outline-heading">Covered this week</h3>
              <ol>
                {issue.sections.map((s) => (
                  <li key={s.id}>{s.title}</li>
                ))}
              </ol>
            </section>
          )}
          {previewSrc ? (
            <iframe title="Preview" class={`frame frame-${width}`} src={previewSrc} sandbox="" referrerpolicy="no-referrer" />
          ) : (
            <p class="frame-empty">The preview appears once the draft is saved: write a subject and some Markdown.</p>
          )}
        </section>
      </div>
      {issue && ['sending', 'paused', 'sent', 'cancelled'].includes(issue.state) && <SendConsole issueId={issue.id} onChanged={reloadIssue} />}
      {issue && <SendPanel issue={issue} unsaved={save.kind !== 'saved' && save.kind !== 'read-only'} onChanged={reloadIssue} />}
      <p>
        <a href="/editor/issues">Back to the issues</a>
      </p>
    </>
  );
}

function SaveStatus({ state, draft, onSave }: { state: SaveState; draft: boolean; onSave: () => void }) {
  const words: Record<SaveState['kind'], string> = {
    loading: 'Loading…',
    saved: 'Saved',
    unsaved: draft ? 'Unsaved changes (kept in this browser)' : 'Unsaved correction (kept in this browser)',
    saving: 'Saving…',
    conflict:
      'Not saved: this issue was changed elsewhere (another tab, or the API) since you opened it. Your text is kept in this browser; copy what you need, then reload to see the other version.',
    offline: 'Not saved: the server cannot be reached. Your text is kept in this browser and is saved when the server answers again.',
    refused: state.kind === 'refused' && !state.field ? `Not saved: ${state.message}` : 'Not saved: see the message at the field.',
    'read-only': 'Read only',
  };
  const problem = state.kind === 'conflict' || state.kind === 'offline' || state.kind === 'refused';
  return (
    <div class="save-status">
      <p role="status" class={problem ? 'error' : 'meta'}>
        {words[state.kind]}
      </p>
      {!draft && (state.kind === 'unsaved' || state.kind === 'refused') && (
        <button type="button" onClick={onSave}>
          Save correction
        </button>
      )}
    </div>
  );
}

type FieldProps = { id: string; name: string; 'aria-invalid'?: 'true'; 'aria-describedby'?: string };

function Field({
  label,
  name,
  hint,
  error,
  children,
}: {
  label: string;
  name: string;
  hint?: string;
  error?: string;
  children: (p: FieldProps) => preact.ComponentChildren;
}) {
  const id = `field-${name}`;
  const described = [hint ? `${id}-hint` : '', error ? `${id}-error` : ''].filter(Boolean).join(' ');
  return (
    <div class="field">
      <label for={id}>{label}</label>
      {hint && (
        <p class="hint" id={`${id}-hint`}>
          {hint}
        </p>
      )}
      {children({ id, name, ...(error ? { 'aria-invalid': 'true' as const } : {}), ...(described ? { 'aria-describedby': described } : {}) })}
      {error && (
        <p class="error" id={`${id}-error`}>
          {error}
        </p>
      )}
    </div>
  );
}

function Toggle<T extends string>({ label, options, value, onChange }: { label: string; options: Record<T, string>; value: T; onChange: (v: T) => void }) {
  return (
    // biome-ignore lint/a11y/useSemanticElements: a group of toggle buttons, not a form fieldset.
    <div class="toggle" role="group" aria-label={label}>
      {(Object.keys(options) as T[]).map((key) => (
        <button key={key} type="button" aria-pressed={value === key} onClick={() => onChange(key)}>
          {options[key]}
        </button>
      ))}
    </div>
  );
}

function Revisions({ issueId, latest, editable, onRestore }: { issueId: number; latest: number; editable: boolean; onRestore: (n: number) => Promise<void> }) {
  const [open, setOpen] = useState(false);
  const [items, setItems] = useState<Revision[]>();
  const [error, setError] = useState<string>();
  useEffect(() => {
    if (!open) return;
    get<{ items: Revision[] }>(`/api/issues/${issueId}/revisions?limit=50`).then(
      (page) => {
        setItems(page.items);
        setError(undefined);
      },
      (err: ApiError) => setError(err.message),
    );
  }, [open, issueId, latest]);
  const when = (iso: string) => new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  return (
    <details class="revisions" onToggle={(e) => setOpen((e.currentTarget as HTMLDetailsElement).open)}>
      <summary>Revisions</summary>
      {error && <ErrorText>{error}</ErrorText>}
      {items && (
        <ol>
          {items.map((r) => (
            <li key={r.number}>
              <span>
                Revision {r.number}
                {r.kind === 'correction' ? ' (correction)' : ''}, {when(r.createdAt)}: {r.subject}
              </span>
              {editable && r.number !== latest && (
                <button type="button" class="secondary" onClick={() => onRestore(r.number).catch((err: ApiError) => setError(err.message))}>
                  Restore revision {r.number}
                </button>
              )}
              {r.number === latest && <span class="meta"> (the saved one)</span>}
            </li>
          ))}
        </ol>
      )}
    </details>
  );
}
