// A labelled input with its hint and, when there is one, its error: the hint and the error are
// tied to the input (aria-describedby), and the input says it is invalid while the error shows.
import type { JSX } from 'preact';
import { ErrorText } from './messages';

type FieldProps = Omit<JSX.InputHTMLAttributes<HTMLInputElement>, 'id' | 'value' | 'onInput'> & {
  id: string;
  label: string;
  hint: JSX.Element | string;
  value: string;
  onValue: (value: string) => void;
  error?: string;
};

export function Field({ id, label, hint, value, onValue, error, ...input }: FieldProps) {
  return (
    <>
      <label for={id}>{label}</label>
      <p class="hint" id={`${id}-hint`}>
        {hint}
      </p>
      <input
        {...input}
        id={id}
        value={value}
        onInput={(e) => onValue((e.target as HTMLInputElement).value)}
        aria-invalid={error ? 'true' : undefined}
        aria-describedby={error ? `${id}-hint ${id}-error` : `${id}-hint`}
      />
      {error && <ErrorText id={`${id}-error`}>{error}</ErrorText>}
    </>
  );
}
