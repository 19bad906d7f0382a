import { describe, expect, it } from '@jest/globals';
import { IssueFileError, parseIssueFile, withIssueId } from '../../src/issues/issue-file.js';
import { isSlugOf, slugBase } from '../../src/issues/slug.js';

describe('the id an issue file keeps', () => {
  it('is read from the front matter as a positive whole number, and anything else is refused', () => {
    expect(parseIssueFile('---\nid: 12\nsubject: S\n---\nText\n')).toEqual({ id: 12, subject: 'S', preheader: undefined, markdown: 'Text\n' });
    expect(parseIssueFile('---\nsubject: S\n---\nText\n')).not.toHaveProperty('id');
    for (const bad of ['0', '-1', '1.5', '"12"', 'twelve', '9007199254740993']) {
      expect(() => parseIssueFile(`---\nid: ${bad}\nsubject: S\n---\nText\n`)).toThrow(IssueFileError);
    }
  });

  it('is added after the opening line, or replaces the id line, and nothing else of the file changes', () => {
    expect(withIssueId('---\nsubject: S\n---\nBody\n', 7)).toBe('---\nid: 7\nsubject: S\n---\nBody\n');
    expect(withIssueId('\uFEFF---\r\nsubject: S\r\n---\r\nBody', 7)).toBe('\uFEFF---\r\nid: 7\r\nsubject: S\r\n---\r\nBody');
    expect(withIssueId('---\r\nsubject: S\r\nid: 3\r\n---\r\nid: 3 in the body\r\n', 8)).toBe('---\r\nsubject: S\r\nid: 8\r\n---\r\nid: 3 in the body\r\n');
    expect(withIssueId('---\nid: 7\nsubject: S\n---\n', 7)).toBe('---\nid: 7\nsubject: S\n---\n');
    expect(withIssueId('No front matter\n', 7)).toBeUndefined();
    // What it writes reads back.
    expect(parseIssueFile(withIssueId('---\nsubject: S # note\npreheader: P\n---\nBody\n', 41)!)).toMatchObject({ id: 41, subject: 'S', preheader: 'P' });
  });
});

describe('the slug a subject suggests, as the CLI matches it', () => {
  it('matches the slug and its numbered variants, nothing else', () => {
    const base = slugBase('Week 12: notes');
    expect(base).toBe('week-12-notes');
    expect(['week-12-notes', 'week-12-notes-2', 'week-12-notes-10'].every((s) => isSlugOf(s, base))).toBe(true);
    expect(['week-12-notes-x', 'week-12-notes-2-3', 'week-12', 'week-12-notes2'].some((s) => isSlugOf(s, base))).toBe(false);
  });
});
