// Numbers, sizes and times as a person reads them: in a terminal, a log line, or a rate alert stored on a send.

export const count = (n: number): string => n.toLocaleString('en-US');
/** 0.0123 → '1.23 %'. */
export const percent = (fraction: number): string => `${(fraction * 100).toFixed(2).replace(/\.?0+$/, '')} %`;

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GB`;
}

export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  const h = Math.floor(s / 3600);
  if (h < 48) return `${h} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** `2026-11-12 09:30:00 UTC`: ISO without the noise, and unambiguous about the zone. */
export function when(iso: string | null): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** `12:03:07`, for progress lines in logs. */
export const clock = (d = new Date()): string => d.toISOString().slice(11, 19);
