// The resident memory of another process, read from /proc (Linux): what the operator's monitoring
// and the OOM killer see, not the V8 heap alone.
import { readFileSync, writeFileSync } from 'node:fs';

const MIB = 1024 * 1024;

function statusField(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/** The process's resident set size now, in bytes. */
export const rssOf = (pid: number): number => statusField(pid, 'VmRSS');

export type MemoryWatch = { baseline: number; stop(): { peak: number; end: number } };

/**
 * Watches a process's RSS from now: the peak (the kernel's high-water mark, reset first where
 * /proc/<pid>/clear_refs allows it, and a sample every 20 ms either way) and the value at the end.
 */
export function watchMemory(pid: number): MemoryWatch {
  let hwmReset = true;
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    hwmReset = false;
  }
  const baseline = rssOf(pid);
  let peak = baseline;
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, rssOf(pid));
    } catch {
      // the process is gone: the test says so
    }
  }, 20);
  return {
    baseline,
    stop() {
      clearInterval(timer);
      const end = rssOf(pid);
      if (hwmReset) peak = Math.max(peak, statusField(pid, 'VmHWM'));
      return { peak: Math.max(peak, end), end };
    },
  };
}

export const mib = (bytes: number): string => `${(bytes / MIB).toFixed(1)} MiB`;
