// What a screen says after an action: an error (announced at once) or a note that it went well.
import type { ComponentChildren } from 'preact';

export function ErrorText({ id, children }: { id?: string; children: ComponentChildren }) {
  return (
    <p class="error" id={id} role="alert">
      {children}
    </p>
  );
}

export function OkText({ children }: { children: ComponentChildren }) {
  return (
    <p class="ok" role="status">
      {children}
    </p>
  );
}
