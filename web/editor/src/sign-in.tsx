import { useState } from 'preact/hooks';
import { type ApiError, request, type Session } from './api';
import { Field } from './field';

export function SignIn({ onSignedIn, notice }: { onSignedIn: (s: Session) => void; notice?: string }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    if (!token.trim()) {
      setError('Enter the API token: the service prints it at start, and keeps it in API_TOKEN or .data/secrets.json.');
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      const { body } = await request<Session>('POST', '/api/session', { body: { token: token.trim() } });
      onSignedIn(body);
    } catch (err) {
      const e = err as ApiError;
      setError(
        e.status === 401
          ? 'That is not the API token. Copy it again from the banner the service printed at start (or API_TOKEN).'
          : e.status === 429
            ? 'Too many sign-in attempts from this address. Wait a few minutes, then try again.'
            : e.message,
      );
    } finally {
      setBusy(false);
    }
  };

  return (
    <main id="main" class="narrow">
      <h1>Sign in to the editor</h1>
      {notice && <p class="notice">{notice}</p>}
      <form onSubmit={submit} noValidate>
        <Field
          id="token"
          label="API token"
          hint="The token the service printed when it started."
          name="token"
          type="password"
          autoComplete="current-password"
          value={token}
          onValue={setToken}
          error={error}
        />
        <button type="submit" disabled={busy}>
          Sign in
        </button>
      </form>
    </main>
  );
}
