import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';

/** A modal dialog: the page behind is inert (focus stays inside), Escape or Cancel closes it. */
export function ConfirmDialog({
  title,
  children,
  onConfirm,
  onClose,
  confirmLabel = 'Confirm',
}: {
  title: string;
  children: ComponentChildren;
  onConfirm: () => Promise<void>;
  onClose: () => void;
  confirmLabel?: string;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    dialog.current?.showModal();
  }, []);
  return (
    <dialog ref={dialog} aria-labelledby="dialog-title" onClose={onClose}>
      <h2 id="dialog-title">{title}</h2>
      {children}
      <div class="actions">
        <button
          type="button"
          disabled={busy}
          onClick={async () => {
            setBusy(true);
            await onConfirm();
            dialog.current?.close();
          }}
        >
          {confirmLabel}
        </button>
        <button type="button" class="secondary" onClick={() => dialog.current?.close()}>
          Cancel
        </button>
      </div>
    </dialog>
  );
}
