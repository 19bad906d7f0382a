import './styles.css';
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { type ApiError, request, type Session, setCsrfToken, whenSignedOut } from './api';
import { Bounces } from './bounces';
import { Issues } from './issues';
import { ReaderPage } from './reader';
import { Readers } from './readers';
import { focusAfterNavigation, onLinkClick, type Route, routeOf, usePath } from './router';
import { SignIn } from './sign-in';
import { Writer } from './writer';
import { ErrorText } from './messages';

type Auth =
  | { state: 'checking' }
  | { state: 'signed-out'; notice?: string }
  | { state: 'signed-in'; session: Session }
  | { state: 'unreachable'; message: string };

function App() {
  const [auth, setAuth] = useState<Auth>({ state: 'checking' });

  const check = () => {
    request<Session>('GET', '/api/session')
      .then(({ body }) => {
        setCsrfToken(body.csrfToken);
        setAuth({ state: 'signed-in', session: body });
      })
      .catch((err: ApiError) => {
        if (err.status === 401) setAuth({ state: 'signed-out' });
        else setAuth({ state: 'unreachable', message: err.message });
      });
  };

  useEffect(() => {
    check();
    whenSignedOut(() => {
      setCsrfToken(undefined);
      setAuth({ state: 'signed-out', notice: 'Your session has ended. Sign in again; what you typed is kept in this browser.' });
    });
  }, []);

  if (auth.state === 'checking') return <p class="loading">Loading the editor…</p>;
  if (auth.state === 'unreachable') {
    return (
      <main class="narrow">
        <h1>Broadside editor</h1>
        <ErrorText>{auth.message}</ErrorText>
        <button type="button" onClick={check}>
          Try again
        </button>
      </main>
    );
  }
  if (auth.state === 'signed-out') {
    return (
      <SignIn
        notice={auth.notice}
        onSignedIn={(session) => {
          setCsrfToken(session.csrfToken);
          setAuth({ state: 'signed-in', session });
        }}
      />
    );
  }
  return (
    <Shell
      onSignedOut={() => {
        setCsrfToken(undefined);
        setAuth({ state: 'signed-out' });
      }}
    />
  );
}

const TITLES: Record<Route['screen'], string> = {
  issues: 'Issues',
  writer: 'Write',
  readers: 'Readers',
  reader: 'Reader',
  bounces: 'Bounces',
  'not-found': 'Not found',
};

function Shell({ onSignedOut }: { onSignedOut: () => void }) {
  const path = usePath();
  const route = routeOf(path);
  const main = useRef<HTMLElement>(null);
  const first = useRef(true);
  const [signOutError, setSignOutError] = useState<string>();
  // One writer per issue; a new issue renamed to its id once saved keeps its writer (and focus).
  const writerKey = useRef('');
  if (route.screen === 'writer' && (focusAfterNavigation() || !writerKey.current)) writerKey.current = String(route.id);

  useEffect(() => {
    document.title = `${TITLES[route.screen]} · Broadside editor`;
    // After navigating, focus goes to the new screen, as a page load would put it at the top.
    if (!first.current && focusAfterNavigation()) main.current?.focus();
    first.current = false;
  }, [path]);

  const signOut = async () => {
    try {
      await request('DELETE', '/api/session');
      document.title = 'Sign in · Broadside editor';
      onSignedOut();
    } catch (err) {
      setSignOutError((err as ApiError).message);
    }
  };

  const current = (screen: Route['screen']) =>
    route.screen === screen || (screen === 'issues' && route.screen === 'writer') || (screen === 'readers' && route.screen === 'reader') ? 'page' : undefined;

  return (
    // biome-ignore lint/a11y/noStaticElementInteractions: delegates clicks on the app's own links; each is a real <a>.
    // biome-ignore lint/a11y/useKeyWithClickEvents: Enter on a link fires click, which this handles.
    <div class="shell" onClick={onLinkClick}>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="bar">
        <span class="brand">Broadside</span>
        <nav aria-label="Main">
          <a href="/editor/issues" aria-current={current('issues')}>
            Issues
          </a>
          <a href="/editor/readers" aria-current={current('readers')}>
            Readers
          </a>
          <a href="/editor/bounces" aria-current={current('bounces')}>
            Bounces
          </a>
        </nav>
        <button type="button" class="secondary" onClick={signOut}>
          Sign out
        </button>
        {signOutError && <ErrorText>{signOutError}</ErrorText>}
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        {route.screen === 'issues' && <Issues />}
        {route.screen === 'writer' && <Writer key={writerKey.current} id={route.id} />}
        {route.screen === 'readers' && <Readers />}
        {route.screen === 'reader' && <ReaderPage key={route.id} id={route.id} />}
        {route.screen === 'bounces' && <Bounces />}
        {route.screen === 'not-found' && (
          <>
            <h1>Not found</h1>
            <p>
              There is no such page in the editor. <a href="/editor/issues">Go to the issues</a>.
            </p>
          </>
        )}
      </main>
    </div>
  );
}

render(<App />, document.getElementById('app')!);
