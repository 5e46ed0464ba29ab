import { AppError } from '../http/problem.js';

// NIST SP 800-63B: at least 8 characters, no composition rules, refuse passwords that are common,
// found in breach-style dictionaries, or built from the user's own identifiers. zxcvbn-ts scores
// guessability against those dictionaries; 3 means "safely unguessable" for a slow hash.
export const MIN_LENGTH = 8;
export const MAX_LENGTH = 256;
const MIN_SCORE = 3;
// zxcvbn-ts scores on the event loop, and its cost grows steeply with length and with the l33t
// variants it tries: with its defaults a 256-character password took over a second, stalling
// every request meanwhile. The first 64 characters and 10 variants keep the worst case to a few
// tens of milliseconds and refuse the same common passwords, l33t spellings included.
export const SCORED_LENGTH = 64;
const L33T_VARIANTS = 10;

// Loaded on first use and kept: the dictionaries are several megabytes that most processes,
// serving tokens, never need.
let zxcvbn: Promise<import('@zxcvbn-ts/core').ZxcvbnFactory> | undefined;
const loadZxcvbn = () =>
  (zxcvbn ??= Promise.all([import('@zxcvbn-ts/core'), import('@zxcvbn-ts/language-common'), import('@zxcvbn-ts/language-en')]).then(
    ([{ ZxcvbnFactory }, common, en]) =>
      new ZxcvbnFactory({ dictionary: { ...common.dictionary, ...en.dictionary }, graphs: common.adjacencyGraphs, translations: en.translations, maxLength: SCORED_LENGTH, l33tMaxSubstitutions: L33T_VARIANTS }),
  ));

/** Why a password is refused, in words for the user; undefined when it is acceptable. */
export async function checkPassword(password: string, identifiers: (string | null | undefined)[] = []): Promise<string | undefined> {
  if (password.length < MIN_LENGTH) return `Use at least ${MIN_LENGTH} characters.`;
  if (password.length > MAX_LENGTH) return `Use at most ${MAX_LENGTH} characters.`;
  const lower = password.toLowerCase();
  const words = identifiers
    .filter((v): v is string => Boolean(v))
    .flatMap((v) => [v.toLowerCase(), v.toLowerCase().split('@')[0]!])
    .filter((v) => v.length >= 3);
  if (words.some((w) => lower.includes(w))) return 'Do not use your email address or username in your password.';
  const result = await (await loadZxcvbn()).checkAsync(password, words);
  if (result.score < MIN_SCORE) {
    return `This password is too easy to guess. ${result.feedback.warning ?? ''} Try a longer phrase of unrelated words.`.replace(/\s+/g, ' ').trim();
  }
  return undefined;
}

/** Refuses a password the policy refuses: 400 WEAK_PASSWORD, the reason on the `password` field. */
export async function assertPasswordAccepted(password: string, identifiers: (string | null | undefined)[] = []): Promise<void> {
  const problem = await checkPassword(password, identifiers);
  if (problem) throw new AppError('WEAK_PASSWORD', problem, [{ path: 'password', message: problem }]);
}
