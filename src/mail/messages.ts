import ejs from 'ejs';
import { fromRoot } from '../paths.js';
import type { Mail } from './mailer.js';

const DIR = `${fromRoot('views', 'emails')}/`;

export type MessageContext = { productName: string; supportEmail: string };

type ActionCopy = { subject: string; heading: string; intro: string; actionLabel: string; ignoreNote: string };

const COPY = {
  'verify-email': (p: string): ActionCopy => ({
    subject: `Confirm your email address for ${p}`,
    heading: 'Confirm your email address',
    intro: `Confirm that this address belongs to your ${p} account.`,
    actionLabel: 'Confirm email address',
    ignoreNote: 'If you did not create an account, ignore this email.',
  }),
  'email-change': (p: string): ActionCopy => ({
    subject: `Confirm the new email address of your ${p} account`,
    heading: 'Confirm your new email address',
    intro: `Someone signed in to a ${p} account asked to move it to this address. The account's address changes only when you confirm it with the link below.`,
    actionLabel: 'Confirm the new address',
    ignoreNote: 'If you did not ask for this, ignore this email: no account will use this address.',
  }),
  'reset-password': (p: string): ActionCopy => ({
    subject: `Reset your ${p} password`,
    heading: 'Reset your password',
    intro: `Someone (hopefully you) asked to reset the password of your ${p} account. Choose a new password with the link below; you will be signed out everywhere.`,
    actionLabel: 'Choose a new password',
    ignoreNote: 'If you did not ask for this, ignore this email: your password stays as it is.',
  }),
  'magic-link': (p: string): ActionCopy => ({
    subject: `Your ${p} sign-in link`,
    heading: `Sign in to ${p}`,
    intro: 'Use the link below to sign in without a password.',
    actionLabel: 'Sign in',
    ignoreNote: 'If you did not ask for this link, ignore this email: nobody can use it without access to your mailbox.',
  }),
};

export type MessageKind = keyof typeof COPY;

const count = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'}`;
// Rounded down: a link never lives shorter than its mail says.
const humanDuration = (seconds: number) =>
  seconds >= 3600 && seconds % 3600 === 0 ? count(seconds / 3600, 'hour') : seconds >= 60 ? count(Math.floor(seconds / 60), 'minute') : count(seconds, 'second');

/** Renders one of the emailed actions (HTML and plain text) from views/emails/action.*.ejs. */
export async function renderActionMail(kind: MessageKind, to: string, input: { url: string; ttlSeconds: number }, ctx: MessageContext): Promise<Mail> {
  const copy = COPY[kind](ctx.productName);
  const locals = { ...ctx, ...copy, url: input.url, expiresIn: humanDuration(input.ttlSeconds) };
  const [html, text] = await Promise.all([
    ejs.renderFile(`${DIR}action.html.ejs`, locals),
    ejs.renderFile(`${DIR}action.txt.ejs`, locals),
  ]);
  return { to, subject: copy.subject, html, text };
}

const NOTICES = {
  'email-changed': (p: string, input: { newEmail: string }) => ({
    subject: `The email address of your ${p} account was changed`,
    heading: 'Your email address was changed',
    body: `The email address of your ${p} account was changed to ${input.newEmail}. Sign-ins and password resets now go to that address; this one will get no more mail about the account.`,
    ignoreNote: 'If this was you, there is nothing to do. If it was not, contact us at once:',
  }),
};

export type NoticeKind = keyof typeof NOTICES;

/** Renders a notice with no link to follow (HTML and plain text) from views/emails/notice.*.ejs. */
export async function renderNoticeMail<K extends NoticeKind>(kind: K, to: string, input: Parameters<(typeof NOTICES)[K]>[1], ctx: MessageContext): Promise<Mail> {
  const copy = NOTICES[kind](ctx.productName, input);
  const locals = { ...ctx, ...copy };
  const [html, text] = await Promise.all([
    ejs.renderFile(`${DIR}notice.html.ejs`, locals),
    ejs.renderFile(`${DIR}notice.txt.ejs`, locals),
  ]);
  return { to, subject: copy.subject, html, text };
}
